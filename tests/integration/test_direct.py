"""Direct statements (workfleet.db.direct): the claim sent on a lane's libpq handle, prepared
once per connection; against PostgreSQL, including what a cursor would have handled."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from tests.integration.test_lanes import backend_pid, pid_via
from workfleet.db.direct import Direct
from workfleet.db.store import PgStore
from workfleet.errors import StoreError
from workfleet.models import NewRun
from workfleet.store import ClaimFilter

ADD = sql.SQL("SELECT %(a)s::int + 1 AS n, %(b)s::text AS t, %(c)s::text[] AS c")
TYPE_OF = sql.SQL("SELECT pg_typeof(%(x)s)::text")


async def terminate(dsn: str, pid: int) -> None:
    """End server process ``pid``, and give its client a moment to see the socket close."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    await asyncio.sleep(0.1)


async def prepared(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'workfleet\\_%' ORDER BY name"
    )
    return [row[0] for row in await cur.fetchall()]


async def test_rows_match_a_cursors_and_the_statement_is_prepared_once(pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        direct = Direct(conn)
        for a in (1, 2, 1, 41):
            params = {"a": a, "b": f"x{a}", "c": ["p", None]}
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(ADD, params)
            assert await direct.fetch("add", ADD, params) == await cur.fetchall()
        assert len(await prepared(conn)) == 1, "one statement for every set of values"
        assert await direct.fetch("none", sql.SQL("SELECT 1 WHERE false"), {}) == []
        assert await direct.fetch("cmd", sql.SQL("SET application_name = 'x'"), {}) == []


async def test_values_equal_in_python_but_not_in_type_are_kept_apart(pg_dsn: str) -> None:
    """``1``, ``1.0`` and ``True`` are one key for a dict; each dumps as its own type."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        direct = Direct(conn)
        kinds = [(await direct.fetch("t", TYPE_OF, {"x": x}))[0][0] for x in (1, True, 1.0, 1)]
        assert kinds[1] == "boolean" and kinds[2] == "double precision"
        assert kinds[0] == kinds[3] != kinds[1]


async def test_a_refused_statement_raises_the_servers_error_and_the_connection_goes_on(
    pg_dsn: str,
) -> None:
    div = sql.SQL("SELECT 1 / %(d)s::int")
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        direct = Direct(conn)
        with pytest.raises(psycopg.errors.DivisionByZero):
            await direct.fetch("div", div, {"d": 0})
        assert await direct.fetch("div", div, {"d": 1}) == [(1,)]
        with pytest.raises(psycopg.errors.UndefinedTable):
            await direct.fetch("bad", sql.SQL("SELECT * FROM no_such_table_here"), {})
        assert not conn.closed


async def test_a_statement_deallocated_or_already_there_is_prepared_again_or_reused(
    pg_dsn: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        direct = Direct(conn)
        params = {"a": 1, "b": "b", "c": []}
        assert await direct.fetch("add", ADD, params) == [(2, "b", [])]
        await conn.execute("DEALLOCATE ALL")
        assert await direct.fetch("add", ADD, params) == [(2, "b", [])]
        # a connection that comes back in a new lane still has its statement
        assert await Direct(conn).fetch("add", ADD, params) == [(2, "b", [])]
        assert len(await prepared(conn)) == 1


async def test_a_call_cancelled_on_the_wire_closes_its_connection(pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        direct = Direct(conn)
        call = asyncio.ensure_future(direct.fetch("sleep", sql.SQL("SELECT pg_sleep(5)"), {}))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert conn.closed, "half a statement on the wire: nothing may use it again"


async def test_a_lost_connection_is_an_operational_error(pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        direct = Direct(conn)
        pid = (await direct.fetch("pid", sql.SQL("SELECT pg_backend_pid()"), {}))[0][0]
        await terminate(pg_dsn, pid)
        with pytest.raises(psycopg.OperationalError):
            await direct.fetch("pid", sql.SQL("SELECT pg_backend_pid()"), {})


async def test_claims_on_a_lane_go_direct_and_survive_a_lost_or_cancelled_lane(
    pg_store: PgStore, pg_pool: AsyncConnectionPool[Any], pg_dsn: str
) -> None:
    filt = ClaimFilter((), ("lane.%",))
    await pg_store.enqueue_many([NewRun("lane.a.v1", {"n": n}) for n in range(4)])
    first = await pg_store.claim("w", filt, 1, 30, waits=False)
    async with pg_store.lanes.connection(filt) as conn:
        assert len(await prepared(conn)) == 1, "the claim was prepared on the lane itself"
        pid = await backend_pid(conn)
    await terminate(pg_dsn, pid)
    with pytest.raises(Exception, match="claim_ready failed"):
        await pg_store.claim("w", filt, 1, 30, waits=False)
    second = await pg_store.claim("w", filt, 1, 30, waits=False)  # a fresh lane
    third = await pg_store.claim("w", filt, 1, 30)  # the fuller claim, prepared beside it
    assert len(first) == len(second) == len(third) == 1
    assert {first[0].payload["n"], second[0].payload["n"], third[0].payload["n"]} <= {0, 1, 2, 3}
    assert len({first[0].id, second[0].id, third[0].id}) == 3
    await pg_store.close()


async def test_a_claim_is_sent_at_once_only_on_an_idle_lane_with_its_statement(
    pg_store: PgStore,
) -> None:
    filt = ClaimFilter((), ("lane.%",))
    assert pg_store.claim_now("w", filt, 1, 30, waits=False) is None, "no lane yet"
    await pg_store.enqueue_many([NewRun("lane.a.v1", {"n": n}) for n in range(3)])
    assert len(await pg_store.claim("w", filt, 1, 30, waits=False)) == 1
    assert pg_store.claim_now("w", filt, 2, 30, waits=False) is None, "not prepared for 2"
    assert pg_store.claim_now("w", filt, 1, 30, waits=True) is None, "nor the fuller claim"
    sent = pg_store.claim_now("w", filt, 1, 30, waits=False)
    assert sent is not None
    assert pg_store.claim_now("w", filt, 1, 30, waits=False) is None, "the lane is busy"
    busy = await pg_store.claim("w", filt, 1, 30, waits=False)  # on a pooled connection
    runs = await sent
    assert len(runs) == len(busy) == 1 and runs[0].id != busy[0].id
    again = pg_store.claim_now("w", filt, 1, 30, waits=False)
    assert again is not None and await again == []
    await pg_store.close()


async def test_an_abandoned_claim_drops_its_lane_and_the_next_claim_takes_a_fresh_one(
    pg_store: PgStore, run_sql: Any
) -> None:
    filt = ClaimFilter((), ("lane.%",))
    await pg_store.enqueue_many([NewRun("lane.a.v1", {"n": n}) for n in range(3)])
    assert len(await pg_store.claim("w", filt, 1, 30, waits=False)) == 1
    before = await pid_via(pg_store.lanes, filt)
    sent = pg_store.claim_now("w", filt, 1, 30, waits=False)
    assert sent is not None
    sent.abandon()
    assert pg_store.lanes.held == 0
    await asyncio.sleep(0.2)  # the claim commits on the server all the same
    assert len(await pg_store.claim("w", filt, 5, 30, waits=False)) == 1
    assert await pid_via(pg_store.lanes, filt) != before
    rows = await run_sql("SELECT status, count(*) FROM workflow_run GROUP BY status")
    assert dict(rows) == {"leased": 3}, "the abandoned claim's run stays leased, until it expires"
    await pg_store.close()


async def test_a_claim_sent_on_a_lost_connection_fails_when_read_and_the_lane_is_replaced(
    pg_store: PgStore, pg_dsn: str
) -> None:
    filt = ClaimFilter((), ("lane.%",))
    await pg_store.enqueue_many([NewRun("lane.a.v1", {"n": n}) for n in range(2)])
    assert len(await pg_store.claim("w", filt, 1, 30, waits=False)) == 1
    pid = await pid_via(pg_store.lanes, filt)
    await terminate(pg_dsn, pid)
    sent = pg_store.claim_now("w", filt, 1, 30, waits=False)
    assert sent is not None, "sent, or failed sending: either way the error comes on reading"
    with pytest.raises(StoreError, match="claim_ready failed"):
        await sent
    assert len(await pg_store.claim("w", filt, 1, 30, waits=False)) == 1
    assert await pid_via(pg_store.lanes, filt) != pid
    await pg_store.close()
