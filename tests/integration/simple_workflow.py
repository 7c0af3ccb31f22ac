"""The statements simple-workflow's own Python client and poller send, for replaying them
against a workfleet schema (``python/simpleworkflow/client.py`` and ``poller.py``; its Go
client and poller send the same text with ``$n`` placeholders).

Each helper opens its own connection and commits after every statement, as those tools do.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

CREATE = """
    INSERT INTO workflow_run (
        id, type, payload, priority, run_at,
        idempotency_key, max_attempts
    ) VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
"""
CANCEL = """
    UPDATE workflow_run
    SET status = 'cancelled', updated_at = NOW()
    WHERE id = %s AND status IN ('pending', 'leased')
"""
LOG_EVENT = """
    INSERT INTO workflow_event (workflow_id, event_type, data)
    VALUES (%s, %s, %s)
"""
# the poller's claim, for one type prefix
CLAIM = """
    UPDATE workflow_run
    SET status = 'leased',
        leased_by = %s,
        lease_until = NOW() + (%s)::interval,
        updated_at = NOW()
    WHERE id = (
        SELECT id FROM workflow_run
        WHERE status = 'pending'
          AND run_at <= NOW()
          AND deleted_at IS NULL
          AND (type LIKE %s)
        ORDER BY priority ASC, created_at ASC
        FOR UPDATE SKIP LOCKED
        LIMIT 1
    )
    RETURNING id, type, payload, attempt, max_attempts
"""
MARK_SUCCEEDED = """
    UPDATE workflow_run
    SET status = 'succeeded',
        result = %s,
        updated_at = NOW()
    WHERE id = %s
"""
MARK_FAILED = """
    UPDATE workflow_run
    SET status = %s,
        attempt = %s,
        run_at = %s,
        last_error = %s,
        updated_at = NOW()
    WHERE id = %s
"""


async def connect(dsn: str, schema: str, autocommit: bool = False) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit)
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    await conn.commit()
    return conn


async def client_create(
    dsn: str, schema: str, run_type: str, key: str | None = None, *, autocommit: bool = False
) -> uuid.UUID | None:
    """The client's create: the INSERT, commit, then its own ``created`` event."""
    async with await connect(dsn, schema, autocommit) as conn:
        cur = await conn.execute(
            CREATE.encode(),
            [str(uuid.uuid4()), run_type, json.dumps({"n": 1}), 100, datetime.now(), key, 3],
        )
        row = await cur.fetchone()
        await conn.commit()
        if row is None:
            return None
        await conn.execute(LOG_EVENT.encode(), [row[0], "created", None])
        await conn.commit()
        run_id: uuid.UUID = row[0]
        return run_id


async def client_cancel(
    dsn: str, schema: str, run_id: uuid.UUID, *, autocommit: bool = False
) -> None:
    """The client's cancel: the UPDATE, commit, then its own ``cancelled`` event."""
    async with await connect(dsn, schema, autocommit) as conn:
        cur = await conn.execute(CANCEL.encode(), [run_id])
        assert cur.rowcount == 1
        await conn.commit()
        await conn.execute(LOG_EVENT.encode(), [run_id, "cancelled", None])
        await conn.commit()


async def poller_claim(
    dsn: str, schema: str, worker_id: str, prefix: str, lease_seconds: int = 30
) -> dict[str, Any] | None:
    """The poller's claim of one run and its ``leased`` event (``attempt`` as the row has it)."""
    async with await connect(dsn, schema) as conn:
        cur = await conn.execute(CLAIM.encode(), [worker_id, f"{lease_seconds} seconds", prefix])
        row = await cur.fetchone()
        if row is None:
            return None
        await conn.commit()
        run = dict(zip(("id", "type", "payload", "attempt", "max_attempts"), row, strict=True))
        data = json.dumps({"worker_id": worker_id, "attempt": run["attempt"]})
        await conn.execute(LOG_EVENT.encode(), [run["id"], "leased", data])
        await conn.commit()
        return run


async def poller_succeed(dsn: str, schema: str, run_id: uuid.UUID, result: Any) -> None:
    async with await connect(dsn, schema) as conn:
        await conn.execute(MARK_SUCCEEDED.encode(), [json.dumps(result), run_id])
        await conn.commit()
        await conn.execute(LOG_EVENT.encode(), [run_id, "succeeded", None])
        await conn.commit()


async def poller_fail(dsn: str, schema: str, run: dict[str, Any], error: str) -> None:
    """The poller's failure write: pending again (backoff attempt² minutes) or failed."""
    attempt = run["attempt"] + 1
    status = "pending" if attempt < run["max_attempts"] else "failed"
    async with await connect(dsn, schema) as conn:
        cur = await conn.execute("SELECT now() + make_interval(mins => %s)", [attempt**2])
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(MARK_FAILED.encode(), [status, attempt, row[0], error, run["id"]])
        await conn.commit()
        event = "retried" if status == "pending" else "failed"
        data = json.dumps({"attempt": attempt, "error": error})
        await conn.execute(LOG_EVENT.encode(), [run["id"], event, data])
        await conn.commit()
