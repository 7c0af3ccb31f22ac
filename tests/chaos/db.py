"""Small SQL helpers for the chaos scenarios (a fresh connection per call, DB clock only)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tests.waiting import eventually
from workfleet.db.listener import LISTENER_APPLICATION_NAME


async def rows(conninfo: str, schema: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(query.encode(), params or None)
        return await cur.fetchall() if cur.description else []


async def scalar(conninfo: str, schema: str, query: str, *params: Any) -> Any:
    result = await rows(conninfo, schema, query, *params)
    return result[0][0] if result else None


async def insert_many(
    conninfo: str,
    schema: str,
    run_type: str,
    count: int,
    payload_sql: str = "'{}'::jsonb",
    max_attempts: int = 3,
) -> None:
    """One plain-SQL INSERT of ``count`` runs (``payload_sql`` may use ``g``, 1..count)."""
    await rows(
        conninfo,
        schema,
        f"INSERT INTO workflow_run (type, payload, max_attempts) "
        f"SELECT %s, {payload_sql}, %s FROM generate_series(1, %s) AS g",
        run_type,
        max_attempts,
        count,
    )


async def count(conninfo: str, schema: str, where: str, *params: Any) -> int:
    """``SELECT count(*) FROM workflow_run WHERE <where>``."""
    value = await scalar(
        conninfo, schema, f"SELECT count(*) FROM workflow_run WHERE {where}", *params
    )
    return int(value)


async def unfinished(conninfo: str, schema: str) -> int:
    value = await scalar(
        conninfo,
        schema,
        "SELECT count(*) FROM workflow_run "
        "WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
    )
    return int(value)


async def pickup_latencies(conninfo: str, schema: str, run_type: str, count: int) -> list[float]:
    """Insert ``count`` runs one at a time; for each, seconds from INSERT to its ``started``
    event, both read from the database clock (``created_at`` of the run and of the event)."""
    latencies: list[float] = []
    for _ in range(count):
        (run_id,) = (
            await rows(
                conninfo,
                schema,
                "INSERT INTO workflow_run (type, payload) VALUES (%s, '{\"ms\": 1}') RETURNING id",
                run_type,
            )
        )[0]

        async def started(run_id: Any = run_id) -> Any:
            return await scalar(
                conninfo,
                schema,
                "SELECT extract(epoch FROM e.created_at - r.created_at) FROM workflow_run r "
                "JOIN workflow_event e ON e.workflow_id = r.id AND e.event_type = 'started' "
                "WHERE r.id = %s",
                run_id,
            )

        latencies.append(float(await eventually(started, 30, every=0.01)))
    return latencies


async def listeners(conninfo: str) -> int:
    """Live LISTEN connections of workers in this database."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            [LISTENER_APPLICATION_NAME],
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0
