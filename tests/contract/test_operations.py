"""Operator actions and reads: cancel, redrive, list, the audit trail and the registry."""

from __future__ import annotations

import itertools
import uuid

import pytest

from tests.contract.harness import ALL, Harness, W, claim_one, enqueue, fail, kinds, record, succeed
from workfleet.errors import StoreError
from workfleet.models import RegistryEntry, RunStatus
from workfleet.store import RunQueue


async def test_cancel_pending(store: RunQueue) -> None:
    run_id = await enqueue(store)
    assert await store.cancel(run_id)
    assert (await record(store, run_id)).status is RunStatus.CANCELLED
    event = (await store.events(run_id))[-1]
    assert (str(event.event_type), event.data) == (
        "cancelled",
        {"previous_status": "pending", "leased_by": None, "attempt": 0},
    )
    assert await store.claim(W, ALL, 10, 30) == []


async def test_cancel_leased(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    assert await store.cancel(run_id)
    row = await record(store, run_id)
    assert (row.status, row.leased_by) == (RunStatus.CANCELLED, W), "lease columns kept"
    assert (await store.events(run_id))[-1].data == {
        "previous_status": "leased",
        "leased_by": W,
        "attempt": 0,
    }


async def test_cancel_refuses_finished_and_missing_runs(store: RunQueue) -> None:
    done = await enqueue(store)
    await claim_one(store)
    await store.complete_many(W, [succeed(done)])
    cancelled = await enqueue(store)
    await store.cancel(cancelled)
    assert not await store.cancel(done)
    assert not await store.cancel(cancelled)
    assert not await store.cancel(uuid.uuid4())
    assert (await record(store, done)).status is RunStatus.SUCCEEDED
    assert (await kinds(store, cancelled)).count("cancelled") == 1


async def test_redrive_a_failed_run(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    await store.complete_many(W, [fail(run_id, error="Fail: no")])
    assert await store.redrive(run_id)
    row = await record(store, run_id)
    assert (row.status, row.attempt, row.last_error) == (RunStatus.PENDING, 0, "Fail: no")
    assert (row.run_at, row.leased_by, row.lease_until) == (row.updated_at, None, None)
    event = (await store.events(run_id))[-1]
    assert (str(event.event_type), event.data) == (
        "retried",
        {"reason": "redrive", "previous_error": "Fail: no"},
    )
    assert (await claim_one(store)).attempt == 0


async def test_redrive_only_from_the_given_statuses(store: RunQueue, harness: Harness) -> None:
    pending = await enqueue(store)
    assert not await store.redrive(pending)
    cancelled = await enqueue(store)
    await store.cancel(cancelled)
    assert not await store.redrive(cancelled), "failed only, by default"
    assert await store.redrive(cancelled, from_statuses=(RunStatus.CANCELLED,))
    await harness.soft_delete(pending)
    assert not await store.redrive(pending, from_statuses=(RunStatus.PENDING,))
    assert not await store.redrive(uuid.uuid4())


async def test_list_runs_filters_and_order(store: RunQueue, harness: Harness) -> None:
    first = await enqueue(store, "billing.a.v1")
    await harness.shift(1)
    media = await enqueue(store, "media.b.v1")
    await harness.shift(1)
    last = await enqueue(store, "billing.c.v1")
    gone = await enqueue(store, "billing.d.v1")
    await harness.soft_delete(gone)
    await store.cancel(media)
    assert [r.id for r in await store.list_runs(type_like="billing.%")] == [last, first]
    assert [r.id for r in await store.list_runs(status=RunStatus.CANCELLED)] == [media]
    assert await store.list_runs(status=RunStatus.FAILED) == []
    assert len(await store.list_runs(limit=1)) == 1


async def test_full_life_cycle_events(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    await store.complete_many(W, [succeed(run_id)])
    events = await store.events(run_id)
    assert [str(e.event_type) for e in events] == ["created", "leased", "started", "succeeded"]
    assert [e.run_id for e in events] == [run_id] * 4
    assert sorted(e.id for e in events) == [e.id for e in events]
    assert all(b.created_at >= a.created_at for a, b in itertools.pairwise(events))
    assert await store.events(uuid.uuid4()) == []


async def test_upsert_registry_keeps_the_operator_switch(store: RunQueue, harness: Harness) -> None:
    await harness.set_enabled("t.off.v1", False)
    await store.upsert_registry(
        [RegistryEntry("t.off.v1", "invoices", "python3"), RegistryEntry("t.new.v1")]
    )
    assert await harness.registry("t.off.v1") == {
        "runtime": "python3",
        "is_enabled": False,
        "description": "invoices",
    }
    assert await harness.registry("t.new.v1") == {
        "runtime": "python",
        "is_enabled": True,
        "description": None,
    }
    await store.upsert_registry([RegistryEntry("t.off.v1")])
    assert await harness.registry("t.off.v1") == {
        "runtime": "python",
        "is_enabled": False,
        "description": "invoices",
    }, "a missing description keeps the old one"
    await enqueue(store, "t.off.v1")
    assert await store.claim(W, ALL, 10, 30) == []


async def test_upsert_registry_brings_a_soft_deleted_row_back(
    store: RunQueue, harness: Harness
) -> None:
    """A soft-deleted row counts as absent; workflow_name stays unique across deleted rows, so
    registering the name revives the row as a new registration would be."""
    await harness.set_enabled("t.gone.v1", False)
    await store.upsert_registry([RegistryEntry("t.gone.v1", "old text", "go")])
    await harness.soft_delete_registry("t.gone.v1")
    await store.upsert_registry([RegistryEntry("t.gone.v1")])
    assert await harness.registry("t.gone.v1") == {
        "runtime": "python",
        "is_enabled": True,
        "description": None,
    }
    assert not await harness.registry_deleted("t.gone.v1")
    await harness.set_enabled("t.gone.v1", False)
    await store.upsert_registry([RegistryEntry("t.gone.v1", "new text")])
    assert await harness.registry("t.gone.v1") == {
        "runtime": "python",
        "is_enabled": False,
        "description": "new text",
    }, "a live row keeps the operator's switch"


async def test_upsert_registry_rejects_a_type_listed_twice(store: RunQueue) -> None:
    with pytest.raises(StoreError):
        await store.upsert_registry([RegistryEntry("t.a.v1"), RegistryEntry("t.a.v1")])


async def test_raw_row_matches_get(store: RunQueue, harness: Harness) -> None:
    run_id = await enqueue(store, "t.a.v1", {"n": 1}, idempotency_key="raw")
    await claim_one(store)
    raw = await harness.raw(run_id)
    row = await record(store, run_id)
    assert raw is not None
    assert raw["status"] == "leased" and raw["idempotency_key"] == "raw"
    assert {k: v for k, v in raw.items() if k != "status"} == {
        k: getattr(row, k) for k in raw if k != "status"
    }
