"""``/schedules``: cron schedules (``workflow_schedule``): list, add, read, pause, resume,
delete. A schedule another tool wrote with a cron or time zone workfleet cannot fire is listed
with its ``problem`` and cannot be resumed (409)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from workfleet.api.auth import Admin, Reader
from workfleet.api.deps import API_PREFIX, Ops
from workfleet.api.problems import Problem
from workfleet.api.schemas import Created, CreateSchedule, Schedule, ScheduleList, check_json
from workfleet.operations import Reason, ScheduleResult

router = APIRouter(prefix=f"{API_PREFIX}/schedules", tags=["schedules"])

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "no such schedule"}}


def _id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Problem(404, f"no schedule {text!r}: not a schedule id", field="path.id") from None


@router.get("", response_model=ScheduleList, summary="Schedules, oldest first")
async def list_schedules(ops: Ops, who: Reader) -> ScheduleList:
    return ScheduleList(schedules=[Schedule.of(s) for s in await ops.list_schedules()])


@router.post("", status_code=201, response_model=Created, summary="Add a schedule")
async def add_schedule(body: CreateSchedule, response: Response, ops: Ops, who: Admin) -> Created:
    for field, value in (
        ("body.type", body.type),
        ("body.schedule", body.schedule),
        ("body.timezone", body.timezone),
    ):
        if "\x00" in value:
            raise Problem(422, f"{field}: contains a NUL character", field=field)
    if problem := check_json(body.payload, "body.payload"):
        raise Problem(422, problem, field="body.payload")
    record = await ops.add_schedule(
        body.type,
        body.schedule,
        timezone=body.timezone,
        payload=body.payload,
        priority=body.priority,
        max_attempts=body.max_attempts,
    )
    response.headers["Location"] = f"/api/v1/schedules/{record.id}"
    return Created(id=record.id)


@router.get("/{id}", response_model=Schedule, responses=_ERRORS, summary="One schedule")
async def get_schedule(id: str, ops: Ops, who: Reader) -> Schedule:
    record = await ops.get_schedule(_id(id))
    if record is None or record.deleted_at is not None:
        raise Problem(404, f"no schedule {id}", field="path.id")
    return Schedule.of(record)


def _answer(result: ScheduleResult) -> Schedule | None:
    if result.done:
        return None
    if result.reason is Reason.CANNOT_FIRE:
        raise Problem(409, f"schedule cannot fire: {result.problem}", field="path.id")
    raise Problem(404, f"no schedule {result.schedule_id}", field="path.id")


async def _current(ops: Ops, schedule_id: uuid.UUID) -> Schedule:
    record = await ops.get_schedule(schedule_id)
    if record is None:
        raise Problem(404, f"no schedule {schedule_id}", field="path.id")
    return Schedule.of(record)


@router.post("/{id}/pause", response_model=Schedule, responses=_ERRORS, summary="Pause")
async def pause(id: str, ops: Ops, who: Admin) -> Schedule:
    schedule_id = _id(id)
    _answer(await ops.pause_schedule(schedule_id))
    return await _current(ops, schedule_id)


@router.post(
    "/{id}/resume",
    response_model=Schedule,
    responses={**_ERRORS, 409: {"description": "workfleet cannot fire this schedule"}},
    summary="Resume (fires next after now; no catch-up)",
)
async def resume(id: str, ops: Ops, who: Admin) -> Schedule:
    schedule_id = _id(id)
    _answer(await ops.resume_schedule(schedule_id))
    return await _current(ops, schedule_id)


@router.delete("/{id}", status_code=204, responses=_ERRORS, summary="Delete (soft)")
async def delete(id: str, ops: Ops, who: Admin) -> Response:
    _answer(await ops.delete_schedule(_id(id)))
    return Response(status_code=204)
