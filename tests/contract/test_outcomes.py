"""Outcome writes and their fencing (DESIGN §3 "Outcomes" and "Fencing")."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from tests.contract.harness import (
    ALL,
    Harness,
    W,
    claim_one,
    enqueue,
    fail,
    kinds,
    record,
    release,
    retry,
    snooze,
    succeed,
)
from workfleet.models import Lease, RunStatus
from workfleet.store import RunQueue


async def test_success_shape(store: RunQueue) -> None:
    run_id = await enqueue(store)
    claimed = await claim_one(store)
    assert await store.complete_many(W, [succeed(run_id, result={"r": [1]})]) == {run_id}
    row = await record(store, run_id)
    assert (row.status, row.result, row.attempt) == (RunStatus.SUCCEEDED, {"r": [1]}, 0)
    assert (row.leased_by, row.lease_until, row.last_error) == (None, None, None)
    assert row.run_at == claimed.run_at, "no delay leaves run_at alone"
    events = await store.events(run_id)
    assert [str(e.event_type) for e in events] == ["created", "leased", "started", "succeeded"]
    assert events[-1].data == {"attempt": 1, "duration_s": 0.25}


async def test_retry_shape(store: RunQueue, harness: Harness) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    assert await store.complete_many(W, [retry(run_id, delay=30)]) == {run_id}
    row = await record(store, run_id)
    assert (row.status, row.attempt, row.last_error) == (
        RunStatus.PENDING,
        1,
        "RuntimeError: boom",
    )
    assert row.run_at == row.updated_at + timedelta(seconds=30)
    assert (row.leased_by, row.lease_until, row.result) == (None, None, None)
    assert await store.claim(W, ALL, 1, 30) == [], "not before the backoff"
    await harness.shift(31)
    again = await claim_one(store)
    assert (again.id, again.attempt) == (run_id, 1)
    assert (await store.events(run_id))[-1].data == {"worker_id": W, "attempt": 2}


async def test_failed_shape(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    failure = dataclasses.replace(fail(run_id, error="Fail: bad input"), result_json='"partial"')
    assert await store.complete_many(W, [failure]) == {run_id}
    row = await record(store, run_id)
    assert (row.status, row.attempt, row.last_error) == (RunStatus.FAILED, 1, "Fail: bad input")
    assert (row.result, row.leased_by) == (None, None), "a result is kept only on success"
    assert (await kinds(store, run_id))[-1] == "failed"
    assert await store.claim(W, ALL, 1, 30) == []


async def test_snooze_consumes_no_attempt_and_keeps_last_error(
    store: RunQueue, harness: Harness
) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    await store.complete_many(W, [retry(run_id, delay=0, error="first error")])
    await claim_one(store)
    assert await store.complete_many(W, [snooze(run_id, attempt=1, delay=60)]) == {run_id}
    row = await record(store, run_id)
    assert (row.status, row.attempt, row.last_error) == (RunStatus.PENDING, 1, "first error")
    assert row.run_at == row.updated_at + timedelta(seconds=60)
    await harness.make_due(run_id)
    assert (await claim_one(store)).attempt == 1


async def test_wrong_worker_or_stale_attempt_changes_nothing(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    before = await record(store, run_id)
    assert await store.complete_many("intruder", [succeed(run_id)]) == set()
    assert await store.complete_many(W, [succeed(run_id, attempt=1)]) == set()
    assert await record(store, run_id) == before
    assert await kinds(store, run_id) == ["created", "leased", "started"]


async def test_a_batch_applies_only_the_held_leases(store: RunQueue) -> None:
    held = await enqueue(store)
    stolen = await enqueue(store)
    await store.claim(W, ALL, 1, 30)
    await store.claim("worker-b", ALL, 1, 30)
    done = await store.complete_many(W, [succeed(held), fail(stolen)])
    assert done == {held}
    assert (await record(store, stolen)).status is RunStatus.LEASED
    assert await kinds(store, stolen) == ["created", "leased", "started"]


async def test_cancelled_run_is_never_overwritten(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    assert await store.cancel(run_id)
    lease = Lease(run_id, 0)
    assert await store.complete_many(W, [succeed(run_id)]) == set()
    assert await store.complete_many(W, [retry(run_id)]) == set()
    [beat] = await store.heartbeat_many(W, [lease], 30)
    assert (beat.held, beat.status) == (False, RunStatus.CANCELLED)
    assert not (await store.extend_lease(W, lease, 30)).held
    assert await store.complete_many(W, [release(run_id, 0)]) == set()
    assert (await record(store, run_id)).status is RunStatus.CANCELLED
    assert (await kinds(store, run_id))[-1] == "cancelled"


async def test_a_stale_duplicate_in_one_batch_writes_nothing(
    store: RunQueue, harness: Harness
) -> None:
    """Two executions of one run (the first lost its lease) finishing in the same batch."""
    run_id = await enqueue(store)
    await claim_one(store)
    await harness.expire_leases()
    await store.reclaim_expired()
    [again] = await store.claim(W, ALL, 1, 30)
    assert again.attempt == 1
    done = await store.complete_many(W, [fail(run_id, attempt=0), succeed(run_id, attempt=1)])
    assert done == {run_id}
    assert (await record(store, run_id)).status is RunStatus.SUCCEEDED
    assert (await kinds(store, run_id))[-1:] == ["succeeded"]
    assert (await kinds(store, run_id)).count("failed") == 0
    beats = await store.heartbeat_many(W, [Lease(run_id, 0), Lease(run_id, 1)], 30)
    assert [b.held for b in beats] == [False, False], "finished: neither lease is held"
