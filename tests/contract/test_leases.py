"""Heartbeats, explicit lease extensions, releases and the expired-lease sweep (DESIGN §3)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests.contract.harness import (
    ALL,
    Harness,
    W,
    claim_one,
    enqueue,
    kinds,
    record,
    release,
    succeed,
)
from workfleet.models import Completion, HeartbeatResult, Lease, RunStatus
from workfleet.store import RunQueue, SweepResult


async def test_heartbeat_reports_each_lease(store: RunQueue) -> None:
    mine = await enqueue(store)
    cancelled = await enqueue(store)
    theirs = await enqueue(store)
    await store.claim(W, ALL, 2, 30)
    await store.claim("worker-b", ALL, 1, 30)
    await store.cancel(cancelled)
    missing = uuid.uuid4()
    leases = [Lease(mine, 0), Lease(cancelled, 0), Lease(theirs, 0), Lease(missing, 0)]
    results = await store.heartbeat_many(W, leases, 30)
    # PostgreSQL gives these rows in no particular order: callers key them by run id
    assert sorted(results, key=lambda r: leases.index(Lease(r.run_id, 0))) == [
        HeartbeatResult(mine, True, RunStatus.LEASED),
        HeartbeatResult(cancelled, False, RunStatus.CANCELLED),
        HeartbeatResult(theirs, False, RunStatus.LEASED),
        HeartbeatResult(missing, False, None),
    ]
    assert await store.heartbeat_many(W, [], 30) == []


async def test_heartbeat_extends_but_never_shortens(store: RunQueue, harness: Harness) -> None:
    run_id = await enqueue(store)
    await claim_one(store, lease=300)
    granted = (await record(store, run_id)).lease_until
    await store.heartbeat_many(W, [Lease(run_id, 0)], 10)
    assert (await record(store, run_id)).lease_until == granted
    await harness.shift(100)
    await store.heartbeat_many(W, [Lease(run_id, 0)], 600)
    row = await record(store, run_id)
    assert row.lease_until == row.updated_at + timedelta(seconds=600)
    assert await kinds(store, run_id) == ["created", "leased", "started"], "no event per beat"


async def test_explicit_heartbeat_writes_an_event(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    result = await store.extend_lease(W, Lease(run_id, 0), 120)
    assert result == HeartbeatResult(run_id, True, RunStatus.LEASED)
    row = await record(store, run_id)
    assert row.lease_until == row.updated_at + timedelta(seconds=120)
    event = (await store.events(run_id))[-1]
    assert (str(event.event_type), event.data) == (
        "heartbeat",
        {"extended_by_seconds": 120, "worker_id": W},
    )
    assert not (await store.extend_lease("intruder", Lease(run_id, 0), 120)).held
    assert not (await store.extend_lease(W, Lease(run_id, 3), 120)).held
    assert (await kinds(store, run_id)).count("heartbeat") == 1


async def test_release_hands_the_run_back_without_an_attempt(store: RunQueue) -> None:
    run_id = await enqueue(store)
    other = await enqueue(store)
    await store.claim(W, ALL, 2, 30)
    released = await store.complete_many(W, [release(run_id, 0), release(other, 5)])
    assert released == {run_id}, "a stale lease is not released"
    row = await record(store, run_id)
    assert (row.status, row.attempt, row.leased_by, row.lease_until) == (
        RunStatus.PENDING,
        0,
        None,
        None,
    )
    assert row.run_at == row.updated_at
    event = (await store.events(run_id))[-1]
    assert (str(event.event_type), event.data) == (
        "retried",
        {"reason": "released", "worker_id": W},
    )
    again = await claim_one(store, "worker-b")
    assert (again.id, again.attempt) == (run_id, 0)


async def test_expired_lease_counts_as_an_attempt(store: RunQueue, harness: Harness) -> None:
    run_id = await enqueue(store, max_attempts=3)
    await claim_one(store)
    await harness.expire_leases()
    swept = await store.reclaim_expired()
    assert (swept.requeued, swept.failed) == (1, 0)
    row = await record(store, run_id)
    message = f"lease expired: worker {W} stopped heartbeating (attempt 1 of 3)"
    assert (row.status, row.attempt, row.last_error) == (RunStatus.PENDING, 1, message)
    assert (row.leased_by, row.lease_until, row.run_at) == (None, None, row.updated_at)
    event = (await store.events(run_id))[-1]
    assert (str(event.event_type), event.data) == (
        "retried",
        {"reason": "lease_expired", "attempt": 1, "error": message},
    )


async def test_exhausted_run_fails_with_a_clear_error(store: RunQueue, harness: Harness) -> None:
    run_id = await enqueue(store, max_attempts=1)
    await claim_one(store, "worker-z")
    await harness.expire_leases()
    swept = await store.reclaim_expired()
    assert (swept.requeued, swept.failed) == (0, 1)
    row = await record(store, run_id)
    assert (row.status, row.attempt) == (RunStatus.FAILED, 1)
    assert row.last_error == "lease expired: worker worker-z stopped heartbeating (attempt 1 of 1)"
    assert (await kinds(store, run_id))[-1] == "failed"
    assert await store.claim(W, ALL, 10, 30) == []


async def test_sweep_leaves_live_leases_and_respects_its_limit(
    store: RunQueue, harness: Harness
) -> None:
    for _ in range(3):
        await enqueue(store)
    await store.claim(W, ALL, 3, 30)
    assert await store.reclaim_expired() == SweepResult(requeued=0, failed=0)
    await harness.expire_leases()
    first = await store.reclaim_expired(limit=2)
    second = await store.reclaim_expired(limit=2)
    assert (first.requeued, second.requeued) == (2, 1)


async def test_reclaimed_holder_is_fenced_off(store: RunQueue, harness: Harness) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    await harness.expire_leases()
    await store.reclaim_expired()
    new = await claim_one(store, "worker-b")
    assert new.attempt == 1
    assert await store.complete_many(W, [succeed(run_id)]) == set()
    [beat] = await store.heartbeat_many(W, [Lease(run_id, 0)], 30)
    assert (beat.held, beat.status) == (False, RunStatus.LEASED)
    assert await store.complete_many("worker-b", [succeed(run_id, attempt=1)]) == {run_id}


async def test_a_second_claim_at_the_same_attempt_fences_the_first(store: RunQueue) -> None:
    """Lease tokens: the same worker claims a snoozed run again at the same attempt; the stale
    execution's heartbeat, explicit heartbeat and outcome change nothing."""
    run_id = await enqueue(store)
    first = await claim_one(store)
    back = Completion.snoozed(first.lease, 0.0, {"reason": "snoozed"})
    assert await store.complete_many(W, [back]) == {run_id}
    second = await claim_one(store)
    assert (second.id, second.attempt) == (first.id, first.attempt)
    assert second.lease != first.lease, "every claim has its own lease token"
    [beat] = await store.heartbeat_many(W, [first.lease], 300)
    assert (beat.held, beat.status) == (False, RunStatus.LEASED)
    assert not (await store.extend_lease(W, first.lease, 300)).held
    stale = Completion.succeeded(first.lease, '"stale"', {"attempt": 1})
    assert await store.complete_many(W, [stale]) == set()
    row = await record(store, run_id)
    assert (row.status, row.leased_by, row.result) == (RunStatus.LEASED, W, None)
    assert "heartbeat" not in await kinds(store, run_id)
    fresh = Completion.succeeded(second.lease, '"fresh"', {"attempt": 1})
    assert await store.complete_many(W, [fresh]) == {run_id}
    assert (await record(store, run_id)).result == "fresh"
