"""The workflow store's contract: the same assertions against the in-memory fake and PostgreSQL.

Fencing on the lease token, the mailbox, idempotent children, the suspend rule and the
wake-ups (a signal, the last awaited child, a cancelled parent) — DESIGN §9.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.contract.harness import ALL, W, enqueue, only, record
from workfleet.checkpoints import (
    Checkpoint,
    LeaseLostError,
    NewChild,
    StepKind,
    StepStatus,
    SuspendResult,
    Suspension,
    WorkflowAdmin,
    WorkflowStore,
)
from workfleet.db.workflows import PgWorkflowStore
from workfleet.models import ClaimedRun, Completion, RunStatus
from workfleet.store import RunQueue
from workfleet.testing import ManualClock, MemoryStore, MemoryWorkflowStore

FAR = datetime(9998, 12, 31, tzinfo=UTC)


@dataclass
class Backend:
    queue: Any  # RunQueue plus the cancel/get helpers both stores have
    flows: Any  # WorkflowStore and WorkflowAdmin
    wait_kind: Any  # run id -> the row's wait_kind
    elapse: Any  # seconds -> let that much time pass on the store's clock

    async def claim(self, run_type: str = "wf.a.v1") -> ClaimedRun:
        [claimed] = await self.queue.claim(W, only(run_type), 1, 30)
        return claimed


@pytest.fixture(params=["memory", "postgres"])
def b(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        queue = MemoryStore(ManualClock())
        flows = MemoryWorkflowStore(queue)

        async def memory_wait_kind(run_id: uuid.UUID) -> str | None:
            return queue._runs[run_id].wait_kind

        async def memory_elapse(seconds: float) -> None:
            queue.clock.advance(seconds)

        return Backend(queue, flows, memory_wait_kind, memory_elapse)
    pg_store: Any = request.getfixturevalue("pg_store")
    run_sql: Any = request.getfixturevalue("run_sql")
    flows = PgWorkflowStore(pg_store.pool, pg_store.schema)

    async def pg_wait_kind(run_id: uuid.UUID) -> str | None:
        [(kind,)] = await run_sql("SELECT wait_kind FROM workflow_run WHERE id = %s", [run_id])
        return kind  # type: ignore[no-any-return]

    return Backend(pg_store, flows, pg_wait_kind, asyncio.sleep)


def step(key: str, output: Any = "out", status: StepStatus = StepStatus.SUCCEEDED) -> Checkpoint:
    return Checkpoint(
        key, key, StepKind.STEP, status, json.dumps(output), None, 1, None, {"k": key}
    )


def wait_for(
    *signals: str, children: tuple[uuid.UUID, ...] = (), kind: str = "signal"
) -> Suspension:
    return Suspension(FAR, kind, signals, children, (), {"kind": kind})


async def test_both_stores_implement_the_ports(b: Backend) -> None:
    assert isinstance(b.flows, WorkflowStore) and isinstance(b.flows, WorkflowAdmin)
    assert isinstance(b.queue, RunQueue)


async def test_checkpoints_are_fenced_on_the_claim(b: Backend) -> None:
    run_id = await enqueue(b.queue, "wf.a.v1")
    claimed = await b.claim()
    await b.flows.checkpoint(W, claimed.lease, step("a", {"n": 1}))
    [a] = await b.flows.load_steps(run_id)
    assert (a.key, a.kind, a.status, a.output, a.attempts) == (
        "a",
        "step",
        "succeeded",
        {"n": 1},
        1,
    )
    assert a.finished_at is not None
    assert await b.queue.cancel(run_id)
    with pytest.raises(LeaseLostError) as lost:
        await b.flows.checkpoint(W, claimed.lease, step("b"))
    assert lost.value.status is RunStatus.CANCELLED
    assert [s.key for s in await b.flows.load_steps(run_id)] == ["a"]


async def test_a_woken_and_reclaimed_run_fences_its_earlier_execution(b: Backend) -> None:
    run_id = await enqueue(b.queue, "wf.a.v1")
    first = await b.claim()
    assert await b.flows.suspend(W, first.lease, wait_for("go")) is SuspendResult.SUSPENDED
    row = await record(b.queue, run_id)
    assert (row.status, row.leased_by, await b.wait_kind(run_id)) == ("pending", None, "signal")
    assert await b.queue.claim(W, ALL, 10, 30) == []  # waiting: not claimable
    sent = await b.flows.send_signal(run_id, "go", '{"v": 1}', None)
    assert sent.created and await b.wait_kind(run_id) is None
    second = await b.claim()  # the same worker claims it again
    assert second.token == first.token + 1
    with pytest.raises(LeaseLostError):
        await b.flows.checkpoint(W, first.lease, step("stale"))
    assert await b.flows.suspend(W, first.lease, wait_for("go")) is SuspendResult.LOST
    message = await b.flows.consume_signal(W, second.lease, step("signal:go"), "go")
    assert message is not None and message.payload == {"v": 1}
    assert [s.key for s in await b.flows.load_steps(run_id)] == ["signal:go"]


async def test_the_mailbox_keeps_signals_sent_before_the_wait_in_order(b: Backend) -> None:
    run_id = await enqueue(b.queue, "wf.a.v1")
    for n in (1, 2):
        await b.flows.send_signal(run_id, "go", json.dumps({"n": n}), None)
    await b.flows.send_signal(run_id, "other", "null", None)
    first = await b.flows.send_signal(run_id, "go", '{"n": 3}', "once")
    again = await b.flows.send_signal(run_id, "go", '{"n": 4}', "once")
    assert first.created and not again.created and again.id == first.id
    claimed = await b.claim()
    got = []
    for key in ("w1", "w2", "w3", "w4"):
        message = await b.flows.consume_signal(W, claimed.lease, step(key), "go")
        got.append(None if message is None else message.payload)
    assert got == [{"n": 1}, {"n": 2}, {"n": 3}, None]
    # a signal already in the mailbox makes the suspend a no-op: the lease is kept
    assert await b.flows.suspend(W, claimed.lease, wait_for("other")) is SuspendResult.READY
    assert (await record(b.queue, run_id)).status is RunStatus.LEASED


async def test_a_signal_for_another_name_does_not_wake_the_run(b: Backend) -> None:
    run_id = await enqueue(b.queue, "wf.a.v1")
    claimed = await b.claim()
    assert await b.flows.suspend(W, claimed.lease, wait_for("go")) is SuspendResult.SUSPENDED
    await b.flows.send_signal(run_id, "other", "{}", None)
    assert await b.wait_kind(run_id) == "signal"
    assert (await record(b.queue, run_id)).run_at == FAR


async def test_children_are_started_once_and_wake_their_parent_when_all_are_done(
    b: Backend,
) -> None:
    parent_id = await enqueue(b.queue, "wf.a.v1")
    parent = await b.claim()
    kids = Checkpoint("kids", "children", StepKind.CHILDREN, StepStatus.SUCCEEDED, attempts=1)
    news = [NewChild(f"kids/{i}", "wf.child.v1", json.dumps({"i": i})) for i in range(2)]
    ids = await b.flows.start_children(W, parent.lease, kids, news)
    assert ids == await b.flows.start_children(W, parent.lease, kids, news)  # idempotent
    [record_] = await b.flows.load_steps(parent_id)
    assert [item["id"] for item in record_.output] == [str(i) for i in ids]
    assert [c.parent_id for c in await b.flows.child_states(ids)] == [parent_id, parent_id]
    waiting = wait_for(children=tuple(ids), kind="children")
    assert await b.flows.suspend(W, parent.lease, waiting) is SuspendResult.SUSPENDED
    for n, expected in ((0, "children"), (1, None)):
        [child] = await b.queue.claim(W, only("wf.child.v1"), 1, 30)
        applied = await b.queue.complete_many(
            W, [Completion.succeeded(child.lease, json.dumps(n), {})]
        )
        assert applied == {child.id}
        assert await b.wait_kind(parent_id) == expected
    states = await b.flows.child_states(ids)
    assert sorted(s.result for s in states) == [0, 1] and all(s.finished for s in states)
    assert (await b.claim()).id == parent_id  # woken: runnable now


async def test_cancelling_a_parent_cancels_its_unfinished_children(b: Backend) -> None:
    parent_id = await enqueue(b.queue, "wf.a.v1")
    parent = await b.claim()
    kids = Checkpoint("kids", "children", StepKind.CHILDREN, StepStatus.SUCCEEDED, attempts=1)
    news = [NewChild(f"kids/{i}", "wf.child.v1", "{}") for i in range(3)]
    ids = await b.flows.start_children(W, parent.lease, kids, news)
    [done] = await b.queue.claim(W, only("wf.child.v1"), 1, 30)
    await b.queue.complete_many(W, [Completion.succeeded(done.lease, "1", {})])
    assert await b.queue.cancel(parent_id)
    statuses = {s.id: s.status for s in await b.flows.child_states(ids)}
    assert statuses.pop(done.id) is RunStatus.SUCCEEDED
    assert set(statuses.values()) == {RunStatus.CANCELLED}


async def test_suspend_is_ready_when_the_wake_up_time_has_passed(b: Backend) -> None:
    await enqueue(b.queue, "wf.a.v1")
    claimed = await b.claim()
    past = Suspension(datetime(2000, 1, 1, tzinfo=UTC), "sleep", (), (), (), {})
    assert await b.flows.suspend(W, claimed.lease, past) is SuspendResult.READY
    soon = claimed.claimed_at + timedelta(hours=1)
    start = Checkpoint("sleep", "sleep", StepKind.SLEEP, StepStatus.WAITING, wake_at=soon)
    later = Suspension(soon, "sleep", (), (), (start,), {"kind": "sleep"})
    assert await b.flows.suspend(W, claimed.lease, later) is SuspendResult.SUSPENDED
    [sleep] = await b.flows.load_steps(claimed.id)
    assert (sleep.kind, sleep.status) == ("sleep", "waiting")
    assert abs((sleep.wake_at - soon).total_seconds()) < 0.001


async def test_a_wait_past_its_deadline_is_claimed_only_when_waits_are_asked_for(
    b: Backend,
) -> None:
    """The hot claim (``waits=False``) takes ready runs only; a workflow whose wait reached its
    deadline is taken by a claim with ``waits=True``, in claim order with ready runs."""
    waiting_id = await enqueue(b.queue, "wf.a.v1")
    claimed = await b.claim()
    soon = claimed.claimed_at + timedelta(seconds=0.2)
    start = Checkpoint("sleep", "sleep", StepKind.SLEEP, StepStatus.WAITING, wake_at=soon)
    nap = Suspension(soon, "sleep", (), (), (start,), {"kind": "sleep"})
    assert await b.flows.suspend(W, claimed.lease, nap) is SuspendResult.SUSPENDED
    ready_id = await enqueue(b.queue, "wf.a.v1")
    await b.elapse(0.3)
    [ready] = await b.queue.claim(W, ALL, 10, 30, waits=False)
    assert ready.id == ready_id
    assert await b.queue.claim(W, ALL, 10, 30, waits=False) == []
    assert await b.wait_kind(waiting_id) == "sleep"
    [woken] = await b.queue.claim(W, ALL, 10, 30, waits=True)
    assert (woken.id, woken.token) == (waiting_id, claimed.token + 1)
    assert await b.wait_kind(waiting_id) is None


async def test_resume_drops_failed_checkpoints_only(b: Backend) -> None:
    run_id = await enqueue(b.queue, "wf.a.v1")
    claimed = await b.claim()
    await b.flows.checkpoint(W, claimed.lease, step("ok"))
    await b.flows.checkpoint(W, claimed.lease, step("bad", None, StepStatus.FAILED))
    assert await b.flows.resume(run_id) is None  # still leased: not failed
    failed = Completion.failed(claimed.lease, "step 'bad' failed", {})
    assert await b.queue.complete_many(W, [failed]) == {run_id}
    assert await b.flows.resume(run_id) == 1
    assert [s.key for s in await b.flows.load_steps(run_id)] == ["ok"]
    row = await record(b.queue, run_id)
    assert (row.status, row.attempt) == ("pending", 0)
    assert "resumed" in [str(e.event_type) for e in await b.queue.events(run_id)]


async def test_a_wait_without_a_deadline_loads_without_one(b: Backend) -> None:
    """A signal wait with no timeout is stored with no wake-up time and must load so: read as
    a time long past, the replay would time the wait out at once."""
    run_id = await enqueue(b.queue, "wf.a.v1")
    claimed = await b.claim()
    start = Checkpoint("signal:go", "go", StepKind.SIGNAL, StepStatus.WAITING)
    forever = Suspension(FAR, "signal", ("go",), (), (start,), {"kind": "signal"})
    assert await b.flows.suspend(W, claimed.lease, forever) is SuspendResult.SUSPENDED
    [wait] = await b.flows.load_steps(run_id)
    assert (wait.status, wait.wake_at) == ("waiting", None)
