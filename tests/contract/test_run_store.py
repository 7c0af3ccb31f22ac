"""One set of assertions, run against the in-memory store and against PostgreSQL (DESIGN §3)."""

from __future__ import annotations

import json
import uuid

from tests.contract.conftest import Harness
from workfleet.models import (
    Completion,
    EventType,
    Lease,
    NewRun,
    RegistryEntry,
    RunStatus,
)
from workfleet.patterns import TypePattern
from workfleet.store import ClaimFilter, RunStore

W = "worker-a"
ALL = ClaimFilter((), ("%",))


def only(*patterns: str) -> ClaimFilter:
    parsed = [TypePattern.parse(p) for p in patterns]
    return ClaimFilter(
        tuple(p.prefix for p in parsed if not p.wildcard),
        tuple(p.like() for p in parsed if p.wildcard),
    )


async def enqueue(store: RunStore, run_type: str = "t.a.v1", **kw: object) -> uuid.UUID:
    [result] = await store.enqueue_many([NewRun(run_type, kw.pop("payload", {"k": 1}), **kw)])  # type: ignore[arg-type]
    assert result.created
    return result.id


def success(run_id: uuid.UUID, attempt: int = 0, result: object = "ok") -> Completion:
    return Completion(
        Lease(run_id, attempt),
        RunStatus.SUCCEEDED,
        EventType.SUCCEEDED,
        False,
        None,
        json.dumps(result),
        None,
        {"attempt": attempt + 1},
    )


async def kinds(store: RunStore, run_id: uuid.UUID) -> list[str]:
    return [str(e.event_type) for e in await store.events(run_id)]


# --- enqueue and idempotency -------------------------------------------------------------------


async def test_enqueue_and_get(store: RunStore) -> None:
    run_id = await enqueue(store, "t.a.v1", payload={"x": [1, 2]}, priority=5, max_attempts=7)
    record = await store.get(run_id)
    assert record is not None
    assert (record.type, record.payload, record.status) == (
        "t.a.v1",
        {"x": [1, 2]},
        RunStatus.PENDING,
    )
    assert (record.priority, record.attempt, record.max_attempts) == (5, 0, 7)
    assert await kinds(store, run_id) == ["created"]
    assert await store.get(uuid.uuid4()) is None


async def test_defaults(store: RunStore) -> None:
    [result] = await store.enqueue_many([NewRun("t.a.v1")])
    record = await store.get(result.id)
    assert record is not None
    assert (record.payload, record.priority, record.max_attempts) == ({}, 100, 3)


async def test_duplicate_key_returns_existing_id(store: RunStore) -> None:
    first = await store.enqueue_many([NewRun("t.a.v1", {"n": 1}, idempotency_key="k")])
    again = await store.enqueue_many([NewRun("t.a.v1", {"n": 2}, idempotency_key="k")])
    assert again[0].id == first[0].id
    assert (first[0].created, again[0].created) == (True, False)
    assert len(await store.list_runs()) == 1
    record = await store.get(first[0].id)
    assert record is not None and record.payload == {"n": 1}


async def test_duplicate_key_inside_one_batch(store: RunStore) -> None:
    results = await store.enqueue_many(
        [
            NewRun("t.a.v1", {"n": 1}, idempotency_key="dup"),
            NewRun("t.a.v1", {"n": 2}),
            NewRun("t.a.v1", {"n": 3}, idempotency_key="dup"),
        ]
    )
    assert [r.created for r in results] == [True, True, False]
    assert results[0].id == results[2].id
    assert len({r.id for r in results}) == 2


# --- claim -------------------------------------------------------------------------------------


async def test_claim_order_priority_then_age(store: RunStore) -> None:
    late_low = await enqueue(store, priority=100)
    early_high = await enqueue(store, priority=10)
    later_low = await enqueue(store, priority=100)
    claimed = await store.claim(W, ALL, 10, 30)
    assert [c.id for c in claimed] == [early_high, late_low, later_low]
    record = await store.get(early_high)
    assert record is not None
    assert (record.status, record.leased_by) == (RunStatus.LEASED, W)
    assert record.lease_until is not None


async def test_claim_respects_limit_and_never_twice(store: RunStore) -> None:
    ids = {await enqueue(store) for _ in range(5)}
    first = await store.claim(W, ALL, 3, 30)
    second = await store.claim("worker-b", ALL, 10, 30)
    assert len(first) == 3 and len(second) == 2
    assert {c.id for c in first} | {c.id for c in second} == ids
    assert not {c.id for c in first} & {c.id for c in second}
    assert await store.claim(W, ALL, 10, 30) == []


async def test_claim_writes_leased_and_started(store: RunStore) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    events = await store.events(run_id)
    assert [str(e.event_type) for e in events] == ["created", "leased", "started"]
    assert events[1].data == {"worker_id": W, "attempt": 1}


async def test_claim_filters_by_pattern(store: RunStore) -> None:
    billing = await enqueue(store, "billing.invoice.v1")
    await enqueue(store, "media.video.v1")
    exact = await enqueue(store, "notify.sms.v1")
    claimed = await store.claim(W, only("billing.%", "notify.sms.v1"), 10, 30)
    assert {c.id for c in claimed} == {billing, exact}


async def test_underscore_and_percent_are_literal(store: RunStore) -> None:
    await enqueue(store, "aXb.v1")
    literal = await enqueue(store, "a_b.v1")
    await enqueue(store, "a%zz.v1")
    claimed = await store.claim(W, only("a_b.%"), 10, 30)
    assert [c.id for c in claimed] == [literal]
    assert await store.claim(W, only("a%b.v1"), 10, 30) == []


async def test_hostile_types_are_data(store: RunStore) -> None:
    hostile = "x'; DROP TABLE workflow_run; --"
    run_id = await enqueue(store, hostile)
    claimed = await store.claim(W, only(hostile + "%"), 10, 30)
    assert [c.type for c in claimed] == [hostile]
    assert await store.get(run_id) is not None


async def test_future_runs_wait_and_next_due_reports_them(
    store: RunStore, harness: Harness
) -> None:
    run_id = await enqueue(store, delay=60)
    assert await store.claim(W, ALL, 10, 30) == []
    due = await store.next_due(ALL)
    assert due is not None and 55 < due <= 60
    await harness.advance(61)
    assert [c.id for c in await store.claim(W, ALL, 10, 30)] == [run_id]
    assert await store.next_due(ALL) is None


async def test_deleted_runs_never_run(store: RunStore, harness: Harness) -> None:
    run_id = await enqueue(store)
    await harness.soft_delete(run_id)
    assert await store.claim(W, ALL, 10, 30) == []


async def test_disabled_types_are_not_claimed(store: RunStore, harness: Harness) -> None:
    await harness.set_enabled("t.off.v1", False)
    off = await enqueue(store, "t.off.v1")
    on = await enqueue(store, "t.on.v1")
    assert [c.id for c in await store.claim(W, ALL, 10, 30)] == [on]
    await harness.set_enabled("t.off.v1", True)
    assert [c.id for c in await store.claim(W, ALL, 10, 30)] == [off]


async def test_registry_upsert_keeps_operator_switch(store: RunStore, harness: Harness) -> None:
    await harness.set_enabled("t.off.v1", False)
    await store.upsert_registry([RegistryEntry("t.off.v1", "desc"), RegistryEntry("t.new.v1")])
    await enqueue(store, "t.off.v1")
    assert await store.claim(W, ALL, 10, 30) == []


# --- outcomes and fencing ---------------------------------------------------------------


async def test_success_writes_result_and_event(store: RunStore) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    assert await store.complete_many(W, [success(run_id, result={"r": 1})]) == {run_id}
    record = await store.get(run_id)
    assert record is not None
    assert (record.status, record.result, record.leased_by) == (RunStatus.SUCCEEDED, {"r": 1}, None)
    assert await kinds(store, run_id) == ["created", "leased", "started", "succeeded"]


async def test_retry_consumes_attempt_and_delays(store: RunStore, harness: Harness) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    retry = Completion(
        Lease(run_id, 0),
        RunStatus.PENDING,
        EventType.RETRIED,
        True,
        30.0,
        None,
        "RuntimeError: boom",
        {"attempt": 1},
    )
    assert await store.complete_many(W, [retry]) == {run_id}
    record = await store.get(run_id)
    assert record is not None
    assert (record.status, record.attempt, record.last_error) == (
        RunStatus.PENDING,
        1,
        "RuntimeError: boom",
    )
    assert await store.claim(W, ALL, 1, 30) == []
    await harness.advance(31)
    [again] = await store.claim(W, ALL, 1, 30)
    assert again.attempt == 1


async def test_snooze_keeps_attempt(store: RunStore) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    snooze = Completion(
        Lease(run_id, 0),
        RunStatus.PENDING,
        EventType.RETRIED,
        False,
        0.0,
        None,
        None,
        {"reason": "snoozed"},
    )
    await store.complete_many(W, [snooze])
    [again] = await store.claim(W, ALL, 1, 30)
    assert again.attempt == 0


async def test_stale_attempt_or_other_worker_changes_nothing(store: RunStore) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    assert await store.complete_many("intruder", [success(run_id)]) == set()
    assert await store.complete_many(W, [success(run_id, attempt=5)]) == set()
    record = await store.get(run_id)
    assert record is not None and record.status is RunStatus.LEASED
    assert await kinds(store, run_id) == ["created", "leased", "started"]


async def test_cancelled_run_is_never_overwritten(store: RunStore) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    assert await store.cancel(run_id)
    assert await store.complete_many(W, [success(run_id)]) == set()
    [beat] = await store.heartbeat_many(W, [Lease(run_id, 0)], 30)
    assert (beat.held, beat.status) == (False, RunStatus.CANCELLED)
    assert await store.release_many(W, [Lease(run_id, 0)]) == set()
    record = await store.get(run_id)
    assert record is not None and record.status is RunStatus.CANCELLED
    assert (await kinds(store, run_id))[-1] == "cancelled"


async def test_heartbeat_reports_held_and_lost(store: RunStore, harness: Harness) -> None:
    a = await enqueue(store)
    b = await enqueue(store)
    await store.claim(W, ALL, 2, 30)
    await harness.expire_leases()
    await store.reclaim_expired()
    c = await enqueue(store)
    await store.claim(W, only("t.%"), 3, 30)
    results = {
        r.run_id: r
        for r in await store.heartbeat_many(W, [Lease(a, 0), Lease(b, 0), Lease(c, 0)], 30)
    }
    assert not results[a].held and not results[b].held, "attempt 0 was reclaimed"
    assert results[c].held


async def test_explicit_heartbeat_writes_event(store: RunStore) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    result = await store.extend_lease(W, Lease(run_id, 0), 120)
    assert result.held
    events = await store.events(run_id)
    assert events[-1].event_type is EventType.HEARTBEAT
    assert events[-1].data["extended_by_seconds"] == 120
    lost = await store.extend_lease("intruder", Lease(run_id, 0), 120)
    assert not lost.held


async def test_release_returns_run_without_attempt(store: RunStore) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    assert await store.release_many(W, [Lease(run_id, 0)]) == {run_id}
    [again] = await store.claim("worker-b", ALL, 1, 30)
    assert (again.id, again.attempt) == (run_id, 0)
    events = await store.events(run_id)
    assert events[3].event_type is EventType.RETRIED
    assert events[3].data["reason"] == "released"


# --- expired leases ----------------------------------------------------------------------------


async def test_expired_lease_counts_as_attempt(store: RunStore, harness: Harness) -> None:
    run_id = await enqueue(store, max_attempts=2)
    await store.claim(W, ALL, 1, 30)
    await harness.expire_leases()
    swept = await store.reclaim_expired()
    assert (swept.requeued, swept.failed) == (1, 0)
    record = await store.get(run_id)
    assert record is not None
    assert (record.status, record.attempt) == (RunStatus.PENDING, 1)
    assert record.last_error == f"lease expired: worker {W} stopped heartbeating (attempt 1 of 2)"
    # the old holder is fenced off
    assert await store.complete_many(W, [success(run_id)]) == set()
    await store.claim(W, ALL, 1, 30)
    await harness.expire_leases()
    swept = await store.reclaim_expired()
    assert (swept.requeued, swept.failed) == (0, 1)
    record = await store.get(run_id)
    assert record is not None
    assert (record.status, record.attempt) == (RunStatus.FAILED, 2)
    assert (await kinds(store, run_id))[-1] == "failed"


async def test_live_leases_are_not_swept(store: RunStore) -> None:
    await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    swept = await store.reclaim_expired()
    assert (swept.requeued, swept.failed) == (0, 0)


# --- cancel, redrive, list ---------------------------------------------------------------------


async def test_cancel_only_pending_or_leased(store: RunStore) -> None:
    pending = await enqueue(store)
    assert await store.cancel(pending)
    assert not await store.cancel(pending), "already cancelled"
    done = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    await store.complete_many(W, [success(done)])
    assert not await store.cancel(done)
    assert not await store.cancel(uuid.uuid4())
    [event] = [e for e in await store.events(pending) if e.event_type is EventType.CANCELLED]
    assert event.data["previous_status"] == "pending"


async def test_redrive_failed_run(store: RunStore) -> None:
    run_id = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    fail = Completion(
        Lease(run_id, 0),
        RunStatus.FAILED,
        EventType.FAILED,
        True,
        None,
        None,
        "Fail: no",
        {"attempt": 1},
    )
    await store.complete_many(W, [fail])
    assert await store.redrive(run_id)
    record = await store.get(run_id)
    assert record is not None
    assert (record.status, record.attempt) == (RunStatus.PENDING, 0)
    assert not await store.redrive(run_id), "only failed runs"
    [again] = await store.claim(W, ALL, 1, 30)
    assert again.id == run_id
    events = await store.events(run_id)
    assert [e.data.get("reason") for e in events if e.event_type is EventType.RETRIED] == [
        "redrive"
    ]


async def test_list_filters(store: RunStore) -> None:
    a = await enqueue(store, "billing.a.v1")
    await enqueue(store, "media.b.v1")
    assert [r.id for r in await store.list_runs(type_like="billing.%")] == [a]
    assert len(await store.list_runs(status=RunStatus.PENDING)) == 2
    assert await store.list_runs(status=RunStatus.FAILED) == []
    assert len(await store.list_runs(limit=1)) == 1
