"""Lanes keep one pooled connection per hot caller, and give it back whenever it misbehaves."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from workfleet.db.lanes import Lanes
from workfleet.db.store import PgStore
from workfleet.models import NewRun
from workfleet.store import ClaimFilter


async def backend_pid(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT pg_backend_pid()")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def pid_via(lanes: Lanes, key: Hashable) -> int:
    async with lanes.connection(key) as conn:
        return await backend_pid(conn)


async def test_a_lane_keeps_its_connection(pg_pool: AsyncConnectionPool[Any]) -> None:
    lanes = Lanes(pg_pool)
    first = await pid_via(lanes, "claims")
    for _ in range(5):
        assert await pid_via(lanes, "claims") == first
    assert await pid_via(lanes, "writes") != first
    assert lanes.held == 2
    await lanes.close()
    assert lanes.held == 0
    assert pg_pool.get_stats()["pool_available"] >= 2, "both connections are back in the pool"


async def test_a_busy_lane_lends_a_pooled_connection(pg_pool: AsyncConnectionPool[Any]) -> None:
    lanes = Lanes(pg_pool)
    async with lanes.connection("claims") as outer, lanes.connection("claims") as inner:
        assert await backend_pid(inner) != await backend_pid(outer)
    assert lanes.held == 1
    await lanes.close()


async def test_lanes_leave_the_reserve_to_the_pool(pg_dsn: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        pg_dsn, min_size=1, max_size=3, open=False, kwargs={"autocommit": True}
    )
    await pool.open(wait=True)
    try:
        lanes = Lanes(pool, reserve=2)
        pids = [await pid_via(lanes, key) for key in ("a", "b", "c")]
        assert lanes.held == 1, "max_size 3 - reserve 2: one lane, the others use the pool"
        assert pids[0] == await pid_via(lanes, "a")
        await lanes.close()
    finally:
        await pool.close()


async def test_a_broken_lane_is_replaced(pg_pool: AsyncConnectionPool[Any], pg_dsn: str) -> None:
    lanes = Lanes(pg_pool)
    victim = await pid_via(lanes, "claims")
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [victim])
    with pytest.raises(psycopg.OperationalError):
        await pid_via(lanes, "claims")
    assert lanes.held == 0, "the broken connection went back to the pool"
    fresh = await pid_via(lanes, "claims")
    assert fresh != victim
    assert await pid_via(lanes, "claims") == fresh
    await lanes.close()


async def test_an_old_lane_goes_back_to_the_pool(pg_pool: AsyncConnectionPool[Any]) -> None:
    lanes = Lanes(pg_pool, max_age=0.0)
    await pid_via(lanes, "claims")
    assert lanes.held == 0


async def test_claims_use_one_connection_and_commit_asynchronously_only_themselves(
    pg_store: PgStore,
) -> None:
    """The claim turns synchronous_commit off for its own transaction, never the session."""
    filt = ClaimFilter((), ("lane.%",))
    await pg_store.enqueue_many([NewRun("lane.a.v1", {}) for _ in range(3)])
    assert len(await pg_store.claim("w", filt, 1, 30)) == 1
    assert len(await pg_store.claim("w", filt, 1, 30)) == 1
    assert pg_store.lanes.held == 1
    async with pg_store.lanes.connection(filt) as conn:
        cur = await conn.execute("SHOW synchronous_commit")
        assert await cur.fetchone() == ("on",)
    await pg_store.close()


async def test_the_claim_turns_synchronous_commit_off_for_its_transaction(
    pg_store: PgStore, pg_dsn: str
) -> None:
    await pg_store.enqueue_many([NewRun("lane.a.v1", {})])
    params = {
        "exact": [],
        "likes": ["lane.%"],
        "limit": 5,
        "worker_id": "w",
        "lease": 30.0,
        "lifecycle": True,
    }
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        async with conn.transaction():
            cur = await conn.execute(pg_store.q["claim"], params)
            assert len(await cur.fetchall()) == 1
            cur = await conn.execute("SHOW synchronous_commit")
            assert await cur.fetchone() == ("off",)
        cur = await conn.execute("SHOW synchronous_commit")
        assert await cur.fetchone() == ("on",)


async def test_a_lane_keeps_its_cursors_and_drops_them_with_its_connection(
    pg_pool: AsyncConnectionPool[Any], pg_dsn: str
) -> None:
    """One cursor per row shape for as long as the lane lives; a pooled call gets none."""
    lanes = Lanes(pg_pool)
    use = lanes.connection("claims")
    async with use:
        first = use.cursor(tuple_row)
        assert first is not None and use.cursor(tuple_row) is first
        assert use.cursor(dict_row) is not first
        await first.execute("SELECT 1")
        assert await first.fetchall() == [(1,)]
    again = lanes.connection("claims")
    async with again:
        assert again.cursor(tuple_row) is first, "kept between blocks"
        busy = lanes.connection("claims")
        async with busy:
            assert busy.cursor(tuple_row) is None, "the lane is busy: a pooled connection"
    victim = await pid_via(lanes, "claims")
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [victim])
    with pytest.raises(psycopg.OperationalError):
        await pid_via(lanes, "claims")
    fresh = lanes.connection("claims")
    async with fresh:
        cur = fresh.cursor(tuple_row)
        assert cur is not None and cur is not first, "a new lane, new cursors"
        await cur.execute("SELECT 2")
        assert await cur.fetchall() == [(2,)]
    await lanes.close()


async def test_claims_on_a_lane_return_their_own_rows_each_time(pg_store: PgStore) -> None:
    """The kept cursor holds no rows over from one claim to the next, found or empty."""
    filt = ClaimFilter((), ("lane.%",))
    await pg_store.enqueue_many([NewRun("lane.a.v1", {"n": n}) for n in range(3)])
    seen = []
    for _ in range(3):
        runs = await pg_store.claim("w", filt, 1, 30)
        assert len(runs) == 1
        seen.append(runs[0].payload["n"])
    assert sorted(seen) == [0, 1, 2]
    assert await pg_store.claim("w", filt, 1, 30) == []
    assert await pg_store.claim("w", filt, 1, 30) == []
    await pg_store.close()
