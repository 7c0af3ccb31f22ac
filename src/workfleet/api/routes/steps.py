"""A durable workflow's own routes under ``/workflows/{id}``: its checkpoints (``/steps``), its
mailbox (``/signals``: read, and send a signal), its children, and resuming a failed workflow
from its failed step. The run itself is read and acted on through ``/workflows`` as any run."""

from __future__ import annotations

from fastapi import APIRouter

from workfleet.api.auth import Admin, Reader
from workfleet.api.deps import API_PREFIX, Ops, run_id
from workfleet.api.problems import Problem
from workfleet.api.routes.runs import answer
from workfleet.api.schemas import ActionDone, check_json, check_text
from workfleet.api.workflow_schemas import (
    ChildList,
    SendSignal,
    SignalList,
    SignalSentBody,
    StepList,
    WorkflowChild,
    WorkflowSignal,
    WorkflowStep,
)
from workfleet.operations import DETAIL_LIMIT, Reason, WorkflowDetail

router = APIRouter(prefix=f"{API_PREFIX}/workflows", tags=["durable workflows"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "no or an invalid API key"},
    404: {"description": "no such run"},
}


async def _detail(ops: Ops, id: str) -> WorkflowDetail:
    rid = run_id(id)
    if await ops.get(rid) is None:
        raise Problem(404, f"no run {id}", field="path.id")
    detail = await ops.workflow(rid)
    if detail is None:  # the API always has the workflow store; this is a wiring error
        raise Problem(503, "workflow reads are not available", field="path.id")
    return detail


@router.get(
    "/{id}/steps",
    response_model=StepList,
    responses=_ERRORS,
    summary="A workflow's checkpoints, oldest first",
)
async def steps(id: str, ops: Ops, who: Reader) -> StepList:
    """Every checkpoint (at most 200): its key, kind, status, tries, times, error and output.
    An ordinary run has none."""
    detail = await _detail(ops, id)
    return StepList(steps=[WorkflowStep.of(s) for s in detail.steps], limit=DETAIL_LIMIT)


@router.get(
    "/{id}/signals", response_model=SignalList, responses=_ERRORS, summary="A run's mailbox"
)
async def signals(id: str, ops: Ops, who: Reader) -> SignalList:
    """Signals sent to the run (at most 200, oldest first), taken or still waiting, and what
    the run waits for now."""
    detail = await _detail(ops, id)
    return SignalList(
        signals=[WorkflowSignal.of(g) for g in detail.signals],
        waiting_for=[f"{w.kind}:{w.target}" for w in detail.waits],
        limit=DETAIL_LIMIT,
    )


@router.post(
    "/{id}/signals",
    status_code=201,
    response_model=SignalSentBody,
    responses={**_ERRORS, 409: {"description": "the run is final: no workflow will take it"}},
    summary="Send a signal to a workflow run",
)
async def send_signal(id: str, body: SendSignal, ops: Ops, who: Admin) -> SignalSentBody:
    """Put a signal in the run's mailbox: a workflow waiting for ``name`` wakes at once, one
    that waits later takes it then. A repeated ``idempotency_key`` adds nothing and answers
    the first signal's id with ``duplicate: true``."""
    for problem in (
        check_json(body.payload, "body.payload"),
        check_text(body.name, "body.name"),
        check_text(body.idempotency_key, "body.idempotency_key"),
    ):
        if problem is not None:
            raise Problem(422, problem, field=problem.split(":", 1)[0])
    result = await ops.signal(run_id(id), body.name, body.payload, body.idempotency_key)
    if result.reason is Reason.NOT_FOUND:
        raise Problem(404, f"no run {id}", field="path.id")
    if not result.done:
        raise Problem(
            409,
            f"run {id} is {result.status}: no workflow will take a signal",
            field="path.id",
            reason=str(result.reason),
            run_status=None if result.status is None else str(result.status),
        )
    assert result.signal_id is not None  # noqa: S101 - done implies an id
    return SignalSentBody(
        run_id=result.run_id, signal_id=result.signal_id, duplicate=result.duplicate
    )


@router.get(
    "/{id}/children", response_model=ChildList, responses=_ERRORS, summary="A workflow's children"
)
async def children(id: str, ops: Ops, who: Reader) -> ChildList:
    """The runs this workflow started (at most 200, oldest first) and their outcomes."""
    detail = await _detail(ops, id)
    return ChildList(children=[WorkflowChild.of(c) for c in detail.children], limit=DETAIL_LIMIT)


@router.post(
    "/{id}/resume",
    response_model=ActionDone,
    responses={**_ERRORS, 409: {"description": "only a failed run can be resumed"}},
    summary="Resume a failed workflow from its failed step",
)
async def resume(id: str, ops: Ops, who: Admin) -> ActionDone:
    """Pending again with fresh attempts; its failed checkpoints are dropped (those steps run
    again), its finished ones kept (orchwf's ``ResumeWorkflow``)."""
    return answer(await ops.resume(run_id(id)))
