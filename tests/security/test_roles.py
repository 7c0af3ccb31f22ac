"""The least-privilege roles of docs/sql/roles.sql, applied to a test schema."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.worker_harness import running_worker
from tests.security.roles import applied_roles, dsn_as
from tests.waiting import eventually
from workfleet import Plugin, Run
from workfleet.db.queries import Queries
from workfleet.db.store import enqueue_on
from workfleet.models import NewRun
from workfleet.workflow import Workflow

pytestmark = pytest.mark.postgres

plugin = Plugin("sec")


@plugin.executor("sec.echo.v1")
async def echo(run: Run[Any]) -> dict[str, Any]:
    return {"echo": run.payload}


@plugin.executor("sec.child.v1")
async def child(run: Run[Any]) -> str:
    return "child"


@plugin.workflow("sec.flow.v1")
async def flow(wf: Workflow[Any]) -> Any:
    await wf.gather(await wf.start_child("sec.child.v1", {}))
    return await wf.wait_signal("go")


async def _as(dsn: str, schema: str) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


async def _denied(conn: psycopg.AsyncConnection[Any], statement: str, *params: Any) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await conn.execute(statement.encode(), params or None)


async def test_producer_enqueues_reads_status_and_nothing_else(pg_dsn: str, schema: str) -> None:
    async with applied_roles(pg_dsn, schema) as roles:
        conn = await _as(dsn_as(pg_dsn, roles.login(roles.producer)), schema)
        async with conn:
            cur = await conn.execute(
                "INSERT INTO workflow_run (type, payload) VALUES ('sec.echo.v1', '{\"a\": 1}') "
                "RETURNING id"
            )
            row = await cur.fetchone()
            assert row is not None
            run_id = row[0]
            # the Python client's path (ids up front, idempotency keys) works too
            first = await enqueue_on(
                conn, Queries(schema), [NewRun("sec.echo.v1", {}, idempotency_key="k1")]
            )
            again = await enqueue_on(
                conn, Queries(schema), [NewRun("sec.echo.v1", {}, idempotency_key="k1")]
            )
            assert first[0].created and not again[0].created and again[0].id == first[0].id

            cur = await conn.execute(
                "SELECT status, attempt FROM workfleet_run_status(%s)", [[run_id]]
            )
            assert await cur.fetchall() == [("pending", 0)]
            cur = await conn.execute(
                "SELECT count(*) FROM workfleet_run_status(%s)", [[uuid.uuid4()]]
            )
            assert await cur.fetchone() == (0,)

            await _denied(
                conn, "UPDATE workflow_run SET status = 'succeeded' WHERE id = %s", run_id
            )
            await _denied(conn, "DELETE FROM workflow_run WHERE id = %s", run_id)
            await _denied(conn, "SELECT payload FROM workflow_run")
            await _denied(conn, "SELECT status FROM workflow_run")
            await _denied(conn, "SELECT data FROM workflow_event")
            await _denied(
                conn,
                "INSERT INTO workflow_run (type, payload, status) "
                "VALUES ('sec.echo.v1', '{}', 'succeeded')",
            )
            await _denied(
                conn,
                "INSERT INTO workflow_run (type, payload, result) "
                "VALUES ('sec.echo.v1', '{}', '{}')",
            )
            await _denied(conn, "TRUNCATE workflow_run")
            await _denied(conn, "UPDATE workflow_registry SET is_enabled = false")
            await _denied(conn, "CREATE TABLE sneaky (x int)")

            cur = await conn.execute("SELECT workfleet_cancel_run(%s)", [run_id])
            assert await cur.fetchone() == (True,)
            cur = await conn.execute("SELECT status FROM workfleet_run_status(%s)", [[run_id]])
            assert await cur.fetchone() == ("cancelled",)


async def test_a_producer_writing_its_own_events_gets_no_duplicates(
    pg_dsn: str, schema: str
) -> None:
    """simple-workflow's clients, run as the producer role, log their own `created` and
    `cancelled` events; the dedupe check reads events the role may not read, and still drops
    the duplicates instead of failing the INSERT."""
    async with applied_roles(pg_dsn, schema) as roles:
        conn = await _as(dsn_as(pg_dsn, roles.login(roles.producer)), schema)
        async with conn:
            cur = await conn.execute(
                "INSERT INTO workflow_run (type, payload) VALUES ('sec.echo.v1', '{}') RETURNING id"
            )
            row = await cur.fetchone()
            assert row is not None
            log = "INSERT INTO workflow_event (workflow_id, event_type) VALUES (%s, %s)"
            cur = await conn.execute(log, [row[0], "created"])
            assert cur.rowcount == 0
            await conn.execute("SELECT workfleet_cancel_run(%s)", [row[0]])
            cur = await conn.execute(log, [row[0], "cancelled"])
            assert cur.rowcount == 0
            await _denied(conn, "SELECT event_type FROM workflow_event")
        admin = await _as(pg_dsn, schema)
        async with admin:
            cur = await admin.execute(
                "SELECT event_type FROM workflow_event WHERE workflow_id = %s ORDER BY id",
                [row[0]],
            )
            assert await cur.fetchall() == [("created",), ("cancelled",)]


async def test_worker_runs_with_only_its_role(pg_dsn: str, schema: str) -> None:
    async with applied_roles(pg_dsn, schema) as roles:
        worker_dsn = dsn_as(pg_dsn, roles.login(roles.worker))
        producer = await _as(dsn_as(pg_dsn, roles.login(roles.producer)), schema)
        async with producer, running_worker(worker_dsn, schema, plugin, poll_interval=0.5):
            cur = await producer.execute(
                "INSERT INTO workflow_run (type, payload) VALUES ('sec.echo.v1', '{\"n\": 7}') "
                "RETURNING id"
            )
            row = await cur.fetchone()
            assert row is not None

            async def status() -> Any:
                cur = await producer.execute(
                    "SELECT status FROM workfleet_run_status(%s)", [[row[0]]]
                )
                found = await cur.fetchone()
                return found is not None and found[0] == "succeeded"

            await eventually(status, 15)
        worker = await _as(worker_dsn, schema)
        async with worker:
            await _denied(worker, "DROP TABLE workflow_event")
            await _denied(worker, "TRUNCATE workflow_run")
            await _denied(worker, "CREATE TABLE sneaky (x int)")
            await _denied(
                worker, "ALTER TABLE workflow_run DROP CONSTRAINT workflow_run_status_check"
            )


async def test_workflows_run_under_the_worker_role_and_producers_signal_them(
    pg_dsn: str, schema: str
) -> None:
    async with applied_roles(pg_dsn, schema) as roles:
        worker_dsn = dsn_as(pg_dsn, roles.login(roles.worker))
        producer = await _as(dsn_as(pg_dsn, roles.login(roles.producer)), schema)
        reader = await _as(dsn_as(pg_dsn, roles.login(roles.reader)), schema)
        async with producer, reader, running_worker(worker_dsn, schema, plugin, poll_interval=0.5):
            cur = await producer.execute(
                "INSERT INTO workflow_run (type, payload) VALUES ('sec.flow.v1', '{}') RETURNING id"
            )
            row = await cur.fetchone()
            assert row is not None
            run_id = row[0]

            async def waiting() -> Any:
                cur = await reader.execute(
                    "SELECT 1 FROM workflow_wait WHERE run_id = %s AND kind = 'signal'", [run_id]
                )
                return await cur.fetchone()

            await eventually(waiting, 15)
            await producer.execute(
                "INSERT INTO workflow_signal (run_id, name, payload) VALUES (%s, 'go', '{}')",
                [run_id],
            )

            async def done() -> Any:
                cur = await producer.execute(
                    "SELECT status FROM workfleet_run_status(%s)", [[run_id]]
                )
                found = await cur.fetchone()
                return found is not None and found[0] == "succeeded"

            await eventually(done, 15)
            await _denied(producer, "SELECT payload FROM workflow_signal")
            await _denied(producer, "UPDATE workflow_signal SET consumed_at = now()")
            await _denied(producer, "SELECT * FROM workflow_step")
            await _denied(reader, "SELECT output FROM workflow_step")
            await _denied(reader, "SELECT payload FROM workflow_signal")
            cur = await reader.execute(
                "SELECT key, status FROM workflow_step WHERE run_id = %s ORDER BY started_at",
                [run_id],
            )
            keys = [r[0] for r in await cur.fetchall()]
            assert keys[0] == "child:sec.child.v1" and keys[-1] == "signal:go"


async def test_reader_counts_without_seeing_payloads(pg_dsn: str, schema: str) -> None:
    async with applied_roles(pg_dsn, schema) as roles:
        admin = await _as(pg_dsn, schema)
        async with admin:
            await admin.execute(
                "INSERT INTO workflow_run (type, payload) VALUES ('sec.echo.v1', '{\"pan\": 1}')"
            )
        reader = await _as(dsn_as(pg_dsn, roles.login(roles.reader)), schema)
        async with reader:
            # the KEDA trigger's kind of query
            cur = await reader.execute(
                "SELECT count(*) FROM workflow_run WHERE status = 'pending' "
                "AND deleted_at IS NULL AND run_at <= now() AND type LIKE 'sec.%%'"
            )
            assert await cur.fetchone() == (1,)
            cur = await reader.execute(
                "SELECT type, status, count(*) FROM workflow_run GROUP BY type, status"
            )
            assert await cur.fetchall() == [("sec.echo.v1", "pending", 1)]
            await _denied(reader, "SELECT payload FROM workflow_run")
            await _denied(reader, "SELECT result FROM workflow_run")
            await _denied(reader, "SELECT * FROM workflow_run")
            await _denied(reader, "SELECT payload FROM workflow_schedule")
            await _denied(reader, "INSERT INTO workflow_run (type, payload) VALUES ('x', '{}')")
            await _denied(reader, "UPDATE workflow_run SET status = 'cancelled'")


async def test_roles_are_dropped_afterwards(pg_dsn: str, schema: str) -> None:
    async with applied_roles(pg_dsn, schema) as roles:
        names = roles.all
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", [names])
        assert await cur.fetchone() == (0,)
