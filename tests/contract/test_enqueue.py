"""Enqueue, defaults and idempotency: the same answers from the fake and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.contract.harness import enqueue, kinds, record
from workfleet.errors import StoreError
from workfleet.models import NewRun, RunStatus
from workfleet.store import RunQueue


async def test_enqueue_and_get(store: RunQueue) -> None:
    run_id = await enqueue(store, "t.a.v1", {"x": [1, 2]}, priority=5, max_attempts=7)
    row = await record(store, run_id)
    assert (row.type, row.payload, row.status) == ("t.a.v1", {"x": [1, 2]}, RunStatus.PENDING)
    assert (row.priority, row.attempt, row.max_attempts) == (5, 0, 7)
    [created] = await store.events(run_id)
    assert (str(created.event_type), created.data) == ("created", None)
    assert await store.get(uuid.uuid4()) is None


async def test_table_defaults(store: RunQueue) -> None:
    [result] = await store.enqueue_many([NewRun("t.a.v1")])
    row = await record(store, result.id)
    assert (row.payload, row.priority, row.max_attempts, row.attempt) == ({}, 100, 3, 0)
    assert row.run_at == row.created_at == row.updated_at
    assert (row.leased_by, row.lease_until, row.last_error, row.result) == (None, None, None, None)
    assert (row.idempotency_key, row.deleted_at) == (None, None)


async def test_delay_and_explicit_run_at(store: RunQueue) -> None:
    delayed = await record(store, await enqueue(store, delay=60))
    assert delayed.run_at - delayed.created_at == timedelta(seconds=60)
    when = await store.db_now() + timedelta(days=1)
    explicit = await record(store, await enqueue(store, run_at=when, delay=5))
    assert explicit.run_at == when, "run_at wins over delay"


async def test_duplicate_key_returns_existing_id(store: RunQueue) -> None:
    [first] = await store.enqueue_many([NewRun("t.a.v1", {"n": 1}, idempotency_key="k")])
    [again] = await store.enqueue_many([NewRun("t.b.v1", {"n": 2}, idempotency_key="k")])
    assert (again.id, first.created, again.created) == (first.id, True, False)
    assert [r.id for r in await store.list_runs()] == [first.id]
    row = await record(store, first.id)
    assert (row.type, row.payload) == ("t.a.v1", {"n": 1}), "the first submit is kept"
    assert await kinds(store, first.id) == ["created"]


async def test_duplicate_key_inside_one_batch(store: RunQueue) -> None:
    results = await store.enqueue_many(
        [
            NewRun("t.a.v1", {"n": 1}, idempotency_key="dup"),
            NewRun("t.a.v1", {"n": 2}),
            NewRun("t.a.v1", {"n": 3}, idempotency_key="dup"),
        ]
    )
    assert [r.created for r in results] == [True, True, False]
    assert results[0].id == results[2].id
    assert len(await store.list_runs()) == 2


async def test_empty_string_is_a_key(store: RunQueue) -> None:
    first, second = await store.enqueue_many(
        [NewRun("t.a.v1", idempotency_key=""), NewRun("t.a.v1", idempotency_key="")]
    )
    assert (second.id, second.created) == (first.id, False)
    [later] = await store.enqueue_many([NewRun("t.a.v1", idempotency_key="")])
    assert (later.id, later.created) == (first.id, False)


async def test_every_inserted_row_gets_one_created_event(store: RunQueue) -> None:
    results = await store.enqueue_many([NewRun("t.a.v1", {"i": i}) for i in range(3)])
    for result in results:
        assert await kinds(store, result.id) == ["created"]


@pytest.mark.parametrize(
    "bad", [float("nan"), {"s": "nul \x00 inside"}, object()], ids=["nan", "nul", "object"]
)
async def test_unstorable_payload_inserts_nothing(store: RunQueue, bad: object) -> None:
    with pytest.raises(StoreError):
        await store.enqueue_many([NewRun("t.ok.v1", {"fine": True}), NewRun("t.bad.v1", bad)])
    assert await store.list_runs() == [], "one bad row fails the whole batch"


@pytest.mark.parametrize(
    "too_long", ["t." + "x" * 254, "t." + "é" * 127], ids=["ascii", "two-byte"]
)
async def test_a_type_over_255_bytes_is_refused_and_inserts_nothing(
    store: RunQueue, too_long: str
) -> None:
    """The limit counts UTF-8 bytes: 127 'é' are 254 bytes, plus 't.' 256."""
    fits = "t." + "é" * 126  # 254 bytes
    [ok] = await store.enqueue_many([NewRun(fits, {})])
    assert ok.created
    with pytest.raises(StoreError, match="255 bytes"):
        await store.enqueue_many([NewRun("t.a.v1", {}), NewRun(too_long, {})])
    assert [r.type for r in await store.list_runs(limit=10)] == [fits]


async def test_awkward_text_round_trips_in_a_batch(store: RunQueue) -> None:
    """Tabs, newlines, backslashes, text-format markers (``\\N``, ``\\.``) and non-ASCII
    characters in a batch arrive as they were sent."""
    payload = {"s": 'tab\there\nnew \\ back \\N \\. "q" é 🚀', "n": None, "x": [1.5, True]}
    results = await store.enqueue_many([NewRun("t.a.v1", payload), NewRun("t.a.v1", {})])
    assert [(await record(store, r.id)).payload for r in results] == [payload, {}]
