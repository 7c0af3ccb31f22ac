"""Eligibility, order, filters and exclusivity of claims (DESIGN §3 "Eligible" and "Claim")."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.contract.harness import ALL, Harness, W, claim_one, enqueue, only, record
from workfleet.models import RunStatus
from workfleet.store import ClaimFilter, RunQueue


async def test_order_is_priority_then_age(store: RunQueue) -> None:
    old_low = await enqueue(store, priority=100)
    high = await enqueue(store, priority=10)
    new_low = await enqueue(store, priority=100)
    claimed = await store.claim(W, ALL, 10, 30)
    assert [c.id for c in claimed] == [high, old_low, new_low]


async def test_claim_leases_the_row(store: RunQueue) -> None:
    run_id = await enqueue(store, "t.a.v1", {"p": 1}, priority=7, max_attempts=4)
    claimed = await claim_one(store, lease=30)
    assert (claimed.id, claimed.type, claimed.payload) == (run_id, "t.a.v1", {"p": 1})
    assert (claimed.attempt, claimed.max_attempts, claimed.priority) == (0, 4, 7)
    row = await record(store, run_id)
    assert (row.status, row.leased_by, row.attempt) == (RunStatus.LEASED, W, 0)
    assert row.lease_until == claimed.claimed_at + timedelta(seconds=30)
    assert row.updated_at == claimed.claimed_at
    assert (claimed.run_at, claimed.created_at) == (row.run_at, row.created_at)


async def test_claim_writes_leased_and_started(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    events = await store.events(run_id)
    assert [str(e.event_type) for e in events] == ["created", "leased", "started"]
    assert events[1].data == events[2].data == {"worker_id": W, "attempt": 1}
    assert events[0].id < events[1].id < events[2].id


async def test_limit_and_disjoint_claims(store: RunQueue) -> None:
    ids = {await enqueue(store) for _ in range(5)}
    first = {c.id for c in await store.claim(W, ALL, 3, 30)}
    second = {c.id for c in await store.claim("worker-b", ALL, 10, 30)}
    assert (len(first), len(second)) == (3, 2)
    assert first | second == ids
    assert await store.claim(W, ALL, 10, 30) == []


async def test_concurrent_claims_never_share_a_run(store: RunQueue) -> None:
    ids = {await enqueue(store) for _ in range(12)}
    batches = await asyncio.gather(*(store.claim(f"w{i}", ALL, 4, 30) for i in range(4)))
    claimed = [c.id for batch in batches for c in batch]
    assert len(claimed) == len(set(claimed)), "a run was leased twice"
    assert set(claimed) <= ids


async def test_empty_filter_or_zero_limit_claims_nothing(store: RunQueue) -> None:
    run_id = await enqueue(store)
    assert await store.claim(W, ClaimFilter((), ()), 10, 30) == []
    assert await store.claim(W, ALL, 0, 30) == []
    assert (await record(store, run_id)).status is RunStatus.PENDING


async def test_exact_and_prefix_filters(store: RunQueue) -> None:
    billing = await enqueue(store, "billing.invoice.v1")
    await enqueue(store, "media.video.v1")
    sms = await enqueue(store, "notify.sms.v1")
    await enqueue(store, "notify.sms.v2")
    claimed = await store.claim(W, only("billing.%", "notify.sms.v1"), 10, 30)
    assert {c.id for c in claimed} == {billing, sms}


async def test_underscore_in_a_prefix_is_literal(store: RunQueue) -> None:
    await enqueue(store, "aXb.v1")
    literal = await enqueue(store, "a_b.v1")
    assert [c.id for c in await store.claim(W, only("a_b.%"), 10, 30)] == [literal]


async def test_percent_inside_a_type_is_literal(store: RunQueue) -> None:
    await enqueue(store, "a-anything-b.v1")
    literal = await enqueue(store, "a%b.v1")
    assert await store.claim(W, only("a%b.v0"), 10, 30) == []
    assert [c.id for c in await store.claim(W, only("a%b.v1"), 10, 30)] == [literal]


async def test_quotes_semicolons_and_backslashes_are_data(store: RunQueue) -> None:
    hostile = "x'; DROP TABLE workflow_run; --"
    slashed = "a\\b.v1"
    await enqueue(store, "ab.v1")
    ids = {await enqueue(store, hostile), await enqueue(store, slashed)}
    claimed = await store.claim(W, only(hostile[:4] + "%", "a\\b.%"), 10, 30)
    assert {c.id for c in claimed} == ids
    assert {c.type for c in claimed} == {hostile, slashed}


async def test_future_runs_wait_and_next_due_reports_them(
    store: RunQueue, harness: Harness
) -> None:
    run_id = await enqueue(store, delay=60)
    assert await store.claim(W, ALL, 10, 30) == []
    due = await store.next_due(ALL)
    assert due is not None and 55 < due <= 60
    await harness.make_due(run_id)
    assert [c.id for c in await store.claim(W, ALL, 10, 30)] == [run_id]
    assert await store.next_due(ALL) is None


async def test_next_due_ignores_what_this_loop_cannot_claim(
    store: RunQueue, harness: Harness
) -> None:
    await enqueue(store, "t.now.v1")
    await enqueue(store, "other.v1", delay=10)
    await enqueue(store, "t.off.v1", delay=20)
    await harness.set_enabled("t.off.v1", False)
    await harness.soft_delete(await enqueue(store, "t.gone.v1", delay=30))
    assert await store.next_due(only("t.%")) is None
    await enqueue(store, "t.later.v1", delay=40)
    due = await store.next_due(only("t.%"))
    assert due is not None and 35 < due <= 40
    assert await store.next_due(ClaimFilter((), ())) is None


async def test_deleted_runs_are_never_claimed(store: RunQueue, harness: Harness) -> None:
    run_id = await enqueue(store)
    await harness.soft_delete(run_id)
    assert await store.claim(W, ALL, 10, 30) == []
    assert (await record(store, run_id)).deleted_at is not None


async def test_a_soft_deleted_registry_row_disables_nothing(
    store: RunQueue, harness: Harness
) -> None:
    """workflow_registry.deleted_at (simple-workflow's soft delete): a deleted row is as if
    absent, so its is_enabled = false no longer holds its type back."""
    await harness.set_enabled("t.off.v1", False)
    off = await enqueue(store, "t.off.v1")
    later = await enqueue(store, "t.off.v1", delay=60)
    assert await store.claim(W, ALL, 10, 30) == []
    assert await store.next_due(only("t.%")) is None
    await harness.soft_delete_registry("t.off.v1")
    due = await store.next_due(only("t.%"))
    assert due is not None and 0 < due <= 60
    assert [c.id for c in await store.claim(W, ALL, 10, 30)] == [off]
    await harness.make_due(later)
    assert [c.id for c in await store.claim(W, ALL, 10, 30)] == [later]


async def test_disabled_types_are_not_claimed(store: RunQueue, harness: Harness) -> None:
    await harness.set_enabled("t.off.v1", False)
    off = await enqueue(store, "t.off.v1")
    on = await enqueue(store, "t.on.v1")
    assert [c.id for c in await store.claim(W, ALL, 10, 30)] == [on]
    await harness.set_enabled("t.off.v1", True)
    assert [c.id for c in await store.claim(W, ALL, 10, 30)] == [off]


async def test_a_claim_sent_at_once_takes_what_a_claim_takes(store: RunQueue) -> None:
    """``claim_now`` (from a NOTIFY's callback) leases the same runs, in the same order, with
    the same events, as ``claim``; PostgreSQL sends it only once the loop's lane has its
    statement prepared (by a first claim with the same parameters)."""
    assert await store.claim(W, ALL, 10, 30, waits=False) == []
    low = await enqueue(store, priority=100)
    high = await enqueue(store, priority=10)
    sent = store.claim_now(W, ALL, 10, 30, waits=False)
    assert sent is not None
    claimed = await sent
    assert [c.id for c in claimed] == [high, low]
    for run in claimed:
        row = await record(store, run.id)
        assert (row.status, row.leased_by, run.attempt) == (RunStatus.LEASED, W, 0)
        events = [str(e.event_type) for e in await store.events(run.id)]
        assert events == ["created", "leased", "started"]
    assert await store.claim(W, ALL, 10, 30, waits=False) == []
    again = store.claim_now(W, ALL, 10, 30, waits=False)
    assert again is not None and await again == [], "nothing left"
    nothing = store.claim_now(W, ALL, 0, 30)
    assert nothing is None or await nothing == []
