"""One hand-written row never stops a batch statement: it is skipped, or failed on its own with
a clear error, and the rest of the batch goes through (claims, outcomes, the lease sweep)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
import structlog
from psycopg import sql

from workfleet.db.notifications import Runnable, channel_name, decode
from workfleet.db.pool import FAR_FUTURE, FAR_PAST, open_pool, tolerate_infinity
from workfleet.db.store import PgStore
from workfleet.models import Completion, Lease, RunStatus
from workfleet.observability.observers import NullObserver
from workfleet.runtime.completer import Completer
from workfleet.store import ClaimFilter
from workfleet.testing import RecordingObserver

pytestmark = pytest.mark.postgres

ALL = ClaimFilter((), ("%",))
W = "worker-a"


async def _sql(dsn: str, schema: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(statement.encode(), params or None)
        return await cur.fetchall() if cur.description else []


async def _legacy_row(dsn: str, schema: str, columns: str, values: str, *params: Any) -> uuid.UUID:
    """A row as an old database or a hand-written INSERT may hold it (the type limit of the
    INSERT trigger did not apply to it)."""
    await _sql(dsn, schema, "ALTER TABLE workflow_run DISABLE TRIGGER workfleet_run_inserted")
    try:
        rows = await _sql(
            dsn,
            schema,
            f"INSERT INTO workflow_run ({columns}) VALUES ({values}) RETURNING id",
            *params,
        )
    finally:
        await _sql(dsn, schema, "ALTER TABLE workflow_run ENABLE TRIGGER workfleet_run_inserted")
    return uuid.UUID(str(rows[0][0]))


async def test_an_oversized_type_does_not_stop_lease_recovery(
    pg_dsn: str, schema: str, pg_store: PgStore
) -> None:
    """A leased run with an 8,100-byte type and an expired lease: the sweep used to fail with
    "payload string too long" on every pass (its NOTIFY), so no expired lease in the schema was
    ever reclaimed again."""
    huge = await _legacy_row(
        pg_dsn,
        schema,
        "type, payload, status, leased_by, lease_until",
        "%s, '{}', 'leased', 'gone', now() - interval '1 minute'",
        "t." + "x" * 8_100,
    )
    normal = await _legacy_row(
        pg_dsn,
        schema,
        "type, payload, status, leased_by, lease_until",
        "'t.a.v1', '{}', 'leased', 'gone', now() - interval '1 minute'",
    )
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as listener:
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel_name(schema))))
        swept = await pg_store.reclaim_expired()
        payloads = [n.payload async for n in listener.notifies(timeout=0.5)]
    assert (swept.requeued, swept.failed) == (2, 0)
    for run_id in (huge, normal):
        assert (await pg_store.get(run_id)).status is RunStatus.PENDING  # type: ignore[union-attr]
    # the long type is announced as "look at every type"; the short one by name
    assert sorted(map(decode, payloads), key=str) == sorted(
        [Runnable(None), Runnable("t.a.v1")], key=str
    )


async def test_attempt_at_the_int_limit_does_not_overflow(
    pg_dsn: str, schema: str, pg_store: PgStore
) -> None:
    """attempt = 2147483647 (written by hand): claim, retry, fail and sweep still work, and the
    good run claimed in the same batch is not held back."""
    limit = 2_147_483_647
    odd = await _legacy_row(
        pg_dsn, schema, "type, payload, attempt, max_attempts", "'t.a.v1', '{}', %s, 3", limit
    )
    good = await _legacy_row(pg_dsn, schema, "type, payload", "'t.a.v1', '{\"k\": 1}'")
    claimed = {c.id: c for c in await pg_store.claim(W, ALL, 10, 30)}
    assert set(claimed) == {odd, good}
    retry = Completion.retry(claimed[odd].lease, 0.0, "RuntimeError: boom", {"attempt": 0})
    assert await pg_store.complete_many(W, [retry]) == {odd}
    row = await pg_store.get(odd)
    assert (row.status, row.attempt) == (RunStatus.PENDING, limit)  # type: ignore[union-attr]
    [again] = await pg_store.claim(W, ALL, 1, 30)
    await _sql(pg_dsn, schema, "UPDATE workflow_run SET lease_until = now() - interval '1 s'")
    swept = await pg_store.reclaim_expired()
    assert (swept.requeued, swept.failed) == (1, 1), "the odd run failed, the good one requeued"
    assert again.id == odd
    row = await pg_store.get(odd)
    assert (row.status, row.attempt) == (RunStatus.FAILED, limit)  # type: ignore[union-attr]


async def test_an_undecodable_payload_fails_only_its_own_run(
    pg_dsn: str, schema: str, pg_store: PgStore
) -> None:
    """A payload nested deeper than Python's parser goes: that claimed run carries the decoding
    error; the other runs of the same claim carry their payloads."""
    deep = "[" * 5_000 + "]" * 5_000
    bad = await _legacy_row(pg_dsn, schema, "type, payload", "'t.a.v1', %s::jsonb", deep)
    good = await _legacy_row(pg_dsn, schema, "type, payload", "'t.a.v1', '{\"k\": 2}'")
    claimed = {c.id: c for c in await pg_store.claim(W, ALL, 10, 30)}
    assert claimed[good].payload == {"k": 2} and claimed[good].payload_error is None
    assert claimed[bad].payload is None
    assert "RecursionError" in (claimed[bad].payload_error or "")


@pytest.mark.parametrize("waits", [True, False], ids=["claim", "claim_ready"])
async def test_infinite_timestamps_do_not_break_claims(
    pg_dsn: str, schema: str, pg_store: PgStore, waits: bool
) -> None:
    """run_at '-infinity' (due since forever) and created_at 'infinity' are read as the ends of
    the calendar; the claim that returns them works (both claims), and so do reads."""
    odd = await _legacy_row(
        pg_dsn,
        schema,
        "type, payload, run_at, created_at",
        "'t.a.v1', '{}', '-infinity', 'infinity'",
    )
    good = await _legacy_row(pg_dsn, schema, "type, payload", "'t.a.v1', '{}'")
    claimed = {c.id: c for c in await pg_store.claim(W, ALL, 10, 30, waits=waits)}
    assert set(claimed) == {odd, good}
    assert claimed[odd].run_at == FAR_PAST
    assert claimed[odd].queue_wait.total_seconds() > 0
    assert (await pg_store.get(odd)).run_at == FAR_PAST  # type: ignore[union-attr]
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        tolerate_infinity(conn)
        cur = await conn.execute("SELECT 'infinity'::timestamptz, '-infinity'::timestamptz")
        far_future, far_past = await cur.fetchone()  # type: ignore[misc]
    assert (far_future, far_past) == (FAR_FUTURE, FAR_PAST)


async def test_the_lease_loop_keeps_the_drivers_c_timestamp_loader(
    pg_store: PgStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path's statements clamp infinite timestamps in SQL, so they are read by the
    driver's C loader: the Python one (``tolerate_infinity``) costs about a tenth of a no-op
    run's CPU. Every statement a lease loop and the completer run stays off it."""
    used: list[object] = []
    monkeypatch.setattr("workfleet.db.queries.tolerate_infinity", used.append)
    await pg_store.enqueue_many([_new() for _ in range(2)])
    [first] = await pg_store.claim(W, ALL, 1, 30, waits=False)
    [second] = await pg_store.claim(W, ALL, 1, 30, waits=True)
    await pg_store.next_due(ALL)
    await pg_store.heartbeat_many(W, [first.lease], 30)
    done = [Completion.succeeded(c.lease, "null", {"attempt": 1}) for c in (first, second)]
    assert await pg_store.complete_many(W, done) == {first.id, second.id}
    assert used == []
    await pg_store.get(first.id)  # any other read goes through it
    assert len(used) == 1


async def test_a_refused_outcome_fails_its_run_and_the_batch_goes_through(
    pg_store: PgStore,
) -> None:
    """An outcome the database refuses (a result jsonb rejects, a delay out of range) fails its
    own run with the refusal as last_error, counted as a bad row; the rest of the batch is
    written."""
    ids = [r.id for r in await pg_store.enqueue_many([_new() for _ in range(3)])]
    claimed = {c.id: c for c in await pg_store.claim(W, ALL, 3, 30)}
    lone_surrogate = Completion.succeeded(claimed[ids[0]].lease, '"\\ud800"', {"attempt": 1})
    far_delay = Completion.snoozed(claimed[ids[1]].lease, 1e300, {"reason": "snoozed"})
    fine = Completion.succeeded(claimed[ids[2]].lease, '"ok"', {"attempt": 1})
    observer = RecordingObserver()
    completer = Completer(pg_store, W, observer, structlog.get_logger())
    task = asyncio.create_task(completer.run())
    try:
        written = [completer.submit(c) for c in (lone_surrogate, far_delay, fine)]
        applied = await asyncio.gather(*written)
    finally:
        completer.stop()
        await asyncio.wait_for(task, 5)
    assert applied == [True, True, True]
    for run_id in ids[:2]:
        row = await pg_store.get(run_id)
        assert row is not None and row.status is RunStatus.FAILED
        assert (row.last_error or "").startswith("outcome could not be stored: ")
    assert (await pg_store.get(ids[2])).status is RunStatus.SUCCEEDED  # type: ignore[union-attr]
    assert observer.bad_rows["complete_many"] == 2


async def test_a_stale_lease_in_a_refused_batch_stays_unwritten(pg_store: PgStore) -> None:
    """The row-by-row fallback is fenced like the batch: a refused outcome of a lease the
    worker no longer holds writes nothing, not even the plain failure."""
    [run] = await pg_store.enqueue_many([_new()])
    [claimed] = await pg_store.claim(W, ALL, 1, 30)
    stale = Completion.succeeded(Lease(run.id, claimed.token + 1), '"\\ud800"', {})
    completer = Completer(pg_store, W, NullObserver(), structlog.get_logger())
    task = asyncio.create_task(completer.run())
    try:
        assert await completer.submit(stale) is False
    finally:
        completer.stop()
        await asyncio.wait_for(task, 5)
    assert (await pg_store.get(run.id)).status is RunStatus.LEASED  # type: ignore[union-attr]


def _new() -> Any:
    from workfleet.models import NewRun

    return NewRun("t.a.v1", {"k": 1})


async def _poisoned(dsn: str, schema: str) -> None:
    """An operator's constraint, added NOT VALID after some rows were written: every UPDATE of
    such a row now fails (a CHECK is checked on each new row version, whatever changed)."""
    await _sql(
        dsn,
        schema,
        "ALTER TABLE workflow_run ADD CONSTRAINT no_poison CHECK (type <> 't.poison') NOT VALID",
    )


async def test_a_row_no_update_can_write_does_not_stop_heartbeats(
    pg_dsn: str, schema: str, pg_store: PgStore
) -> None:
    """The batched heartbeat used to fail for every lease of the worker (so all of them
    expired); now the refused one is counted and left to expire, the others are extended."""
    from workfleet.runtime.execution import RunSession
    from workfleet.runtime.heartbeat import Heartbeater

    poison = await _legacy_row(
        pg_dsn,
        schema,
        "type, payload, status, leased_by, lease_until, lease_token",
        "'t.poison', '{}', 'leased', %s, now() + interval '10 seconds', 0",
        W,
    )
    await _poisoned(pg_dsn, schema)
    [run] = await pg_store.enqueue_many([_new()])
    [claimed] = await pg_store.claim(W, ClaimFilter(("t.a.v1",), ()), 1, 10)
    sessions = [
        RunSession(Lease(poison, 0), pg_store, W),
        RunSession(claimed.lease, pg_store, W),
    ]
    lost: list[Any] = []
    for s in sessions:
        s.on_lost = lost.append
    observer = RecordingObserver()
    beats = Heartbeater(pg_store, W, 600, lambda: sessions, observer, structlog.get_logger())
    await beats.beat()
    row = await pg_store.get(run.id)
    assert row is not None and row.lease_until is not None
    assert (row.lease_until - row.updated_at).total_seconds() == 600, "extended"
    assert observer.bad_rows["heartbeat_many"] == 1
    assert lost == [], "a refused extension is not a lost lease: it expires on its own"


async def test_a_row_no_update_can_write_does_not_stop_the_sweep(pg_dsn: str, schema: str) -> None:
    """An expired lease whose row the sweep cannot write used to fail every pass, so no
    expired lease in the schema was reclaimed again; now it is skipped and counted."""
    poison = await _legacy_row(
        pg_dsn,
        schema,
        "type, payload, status, leased_by, lease_until",
        "'t.poison', '{}', 'leased', 'gone', now() - interval '2 minutes'",
    )
    normal = await _legacy_row(
        pg_dsn,
        schema,
        "type, payload, status, leased_by, lease_until",
        "'t.a.v1', '{}', 'leased', 'gone', now() - interval '1 minute'",
    )
    await _poisoned(pg_dsn, schema)
    observer = RecordingObserver()
    async with await open_pool(pg_dsn, max_size=2, application_name=None) as pool:
        store = PgStore(pool, schema, observer=observer)
        swept = await store.reclaim_expired()
        assert (swept.requeued, swept.failed) == (1, 0)
        assert (await store.get(normal)).status is RunStatus.PENDING  # type: ignore[union-attr]
        assert (await store.get(poison)).status is RunStatus.LEASED  # type: ignore[union-attr]
    assert observer.bad_rows["reclaim_expired"] == 1
