"""``/workflows``: simple-workflow's routes and bodies, with its quirks fixed (404 for a missing
run, 409 with the existing id for a duplicate idempotency key), plus keyset paging, filters,
redrive and a server-sent-events stream of one run's events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from workfleet.api.auth import Admin, Reader
from workfleet.api.deps import (
    API_PREFIX,
    Ops,
    Settings,
    decode_cursor,
    encode_cursor,
    payload_filter,
    run_id,
    run_query,
)
from workfleet.api.problems import Problem
from workfleet.api.schemas import (
    ActionDone,
    Created,
    CreateWorkflow,
    EventList,
    Run,
    RunEvent,
    RunList,
    check_json,
    check_text,
)
from workfleet.models import MAX_TYPE_BYTES, NewRun, RunStatus
from workfleet.operations import ActionResult, Reason

router = APIRouter(prefix=f"{API_PREFIX}/workflows", tags=["workflows"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or an invalid API key"},
    404: {"description": "no such run"},
    409: {"description": "the run is not in a status this action applies to"},
}


def _check_type(run_type: str, settings: Settings) -> None:
    """An *unknown* type is one no run can have: blank, longer than 255 UTF-8 bytes, holding a
    control character, or (with ``WORKFLEET_API__ALLOWED_TYPES``) matching none of the
    configured patterns. Types no worker serves yet are accepted: a run records intent."""
    field = "body.type"
    if not run_type.strip():
        raise Problem(422, "unknown type: the type is blank", field=field)
    if len(run_type.encode("utf-8", "surrogatepass")) > MAX_TYPE_BYTES:
        raise Problem(422, f"unknown type: longer than {MAX_TYPE_BYTES} bytes", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in run_type):
        raise Problem(422, "unknown type: it holds a control character", field=field)
    allowed = settings.type_patterns()
    if allowed and not any(p.matches(run_type) for p in allowed):
        raise Problem(
            422,
            f"unknown type: this API accepts only {', '.join(settings.allowed_types)}",
            field=field,
        )


@router.post(
    "",
    status_code=201,
    response_model=Created,
    responses={409: {"description": "duplicate idempotency key; the body names the existing id"}},
    summary="Record a run",
)
async def create(
    body: CreateWorkflow, response: Response, ops: Ops, settings: Settings, who: Admin
) -> Created:
    _check_type(body.type, settings)
    for problem in (
        check_json(body.payload, "body.payload"),
        check_text(body.idempotency_key, "body.idempotency_key"),
    ):
        if problem:
            raise Problem(422, problem, field=problem.partition(":")[0])
    result = await ops.enqueue(
        NewRun(
            body.type,
            body.payload,
            priority=body.priority,
            run_at=body.run_after,
            idempotency_key=body.idempotency_key,
            max_attempts=body.max_attempts,
        )
    )
    if not result.created:
        raise Problem(
            409,
            "a run with this idempotency key exists already",
            field="body.idempotency_key",
            id=str(result.id),
            headers={"Location": f"/api/v1/workflows/{result.id}"},
        )
    response.headers["Location"] = f"/api/v1/workflows/{result.id}"
    return Created(id=result.id)


@router.get("", response_model=RunList, summary="List runs, newest first")
async def list_runs(
    ops: Ops,
    who: Reader,
    type: Annotated[list[str], Query(description="exact type, or 'prefix.%'")] = [],  # noqa: B006
    prefix: Annotated[list[str], Query(description="literal type prefix ('billing.')")] = [],  # noqa: B006
    status: Annotated[list[RunStatus], Query()] = [],  # noqa: B006
    idempotency_key: Annotated[str | None, Query(max_length=1000)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    payload: Annotated[str | None, Query(description="JSON the payload contains (@>)")] = None,
    error: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int | None, Query(ge=0, le=10_000)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RunList:
    if offset is not None and cursor is not None:
        raise Problem(422, "give offset or cursor, not both", field="query.cursor")
    query = run_query(
        types=type,
        prefixes=prefix,
        statuses=status,
        since=created_after,
        until=created_before,
        payload=payload_filter(payload),
        error=error,
    )
    if idempotency_key is not None:
        if problem := check_text(idempotency_key, "query.idempotency_key"):
            raise Problem(422, problem, field="query.idempotency_key")
        # the key is unique: at most one run, looked up through its index
        found = await ops.find_by_key(idempotency_key, query)
        runs = [] if found is None or offset else [Run.of(found)]
        return RunList(workflows=runs, limit=limit, offset=offset)
    if cursor is not None or offset is None:
        after = None if cursor is None else decode_cursor(cursor)
        page = await ops.list_runs(query, limit=limit, after=after)
        return RunList(
            workflows=[Run.of(r) for r in page.runs],
            limit=limit,
            next_cursor=None if page.next is None else encode_cursor(page.next),
        )
    records = await ops.list_offset(query, limit=limit, offset=offset)
    return RunList(workflows=[Run.of(r) for r in records], limit=limit, offset=offset)


@router.get("/{id}", response_model=Run, responses=_ERRORS, summary="One run")
async def get_run(id: str, ops: Ops, who: Reader) -> Run:
    record = await ops.get(run_id(id))
    if record is None:
        raise Problem(404, f"no run {id}", field="path.id")
    return Run.of(record)


@router.get("/{id}/events", response_model=EventList, responses=_ERRORS, summary="Audit trail")
async def events(id: str, ops: Ops, who: Reader) -> EventList:
    detail = await ops.inspect(run_id(id))
    if detail is None:
        raise Problem(404, f"no run {id}", field="path.id")
    return EventList(events=[RunEvent.of(e) for e in detail.events])


def answer(result: ActionResult) -> ActionDone:
    """An action's result as a response: 200 with the run's status, or 404/409 problems."""
    if result.done and result.status is not None:
        return ActionDone(id=result.run_id, status=result.status)
    if result.reason is Reason.NOT_FOUND:
        raise Problem(404, f"no run {result.run_id}", field="path.id")
    raise Problem(
        409,
        f"run {result.run_id} is {result.status}: {result.reason}",
        field="path.id",
        reason=str(result.reason),
        run_status=None if result.status is None else str(result.status),
    )


@router.delete("/{id}", response_model=ActionDone, responses=_ERRORS, summary="Cancel a run")
async def cancel(id: str, ops: Ops, who: Admin) -> ActionDone:
    return answer(await ops.cancel(run_id(id)))


@router.post(
    "/{id}/redrive", response_model=ActionDone, responses=_ERRORS, summary="Redrive a failed run"
)
async def redrive(id: str, ops: Ops, who: Admin) -> ActionDone:
    return answer(await ops.redrive(run_id(id)))


@router.get(
    "/{id}/events/stream",
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
    response_class=StreamingResponse,
    summary="The run's events as server-sent events",
)
async def stream(
    id: str,
    request: Request,
    ops: Ops,
    settings: Settings,
    who: Reader,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    """Each event once (``id`` is the event id; reconnect with ``Last-Event-ID``); the stream
    ends after the run's final event, or after ``events_stream_seconds``."""
    rid = run_id(id)
    if await ops.get(rid) is None:
        raise Problem(404, f"no run {id}", field="path.id")
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0

    async def frames() -> AsyncIterator[bytes]:
        nonlocal after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.events_stream_seconds
        yield b"retry: 2000\n\n"
        while loop.time() < deadline and not await request.is_disconnected():
            detail = await ops.inspect(rid)
            if detail is None:
                return
            for event in detail.events:
                if event.id > after:
                    after = event.id
                    data = RunEvent.of(event).model_dump_json()
                    yield f"id: {event.id}\nevent: {event.event_type}\ndata: {data}\n\n".encode()
            if detail.run.status.is_terminal:
                yield b"event: end\ndata: " + json.dumps(str(detail.run.status)).encode() + b"\n\n"
                return
            await asyncio.sleep(settings.events_poll_seconds)

    return StreamingResponse(
        frames(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
