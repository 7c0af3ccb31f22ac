"""The Python producer API: submit runs, look at them, cancel or redrive them.

Producers in other languages use plain SQL (``INSERT INTO workflow_run ...``); this client adds
idempotency handling, batch submits in one round trip, and submits inside the caller's own
transaction so the run commits (or rolls back) with the caller's business writes::

    async with Client.connect("postgresql://app@db/app?schema=workflow") as client:
        run_id = await client.submit("billing.invoice.v1", {"invoice_id": "INV-1"},
                                     idempotency_key="invoice:INV-1")
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from workfleet.db.store import PgStore, enqueue_on
from workfleet.dsn import resolve_dsn
from workfleet.errors import ConfigError
from workfleet.models import Enqueued, Event, NewRun, RunRecord, RunStatus
from workfleet.patterns import TypePattern
from workfleet.settings import Settings


def _check(run: NewRun) -> NewRun:
    """Reject what the database would reject later, with a message naming the problem."""
    if not run.type or not run.type.strip():
        raise ValueError("run type must not be empty")
    if run.run_at is not None and run.delay is not None:
        raise ValueError("give run_at or delay, not both")
    if run.run_at is not None and run.run_at.tzinfo is None:
        raise ValueError("run_at must be timezone-aware")
    if run.delay is not None and run.delay < 0:
        raise ValueError("delay must be >= 0 seconds")
    if run.max_attempts is not None and run.max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    try:
        json.dumps(run.payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not JSON-serialisable: {exc}") from None
    return run


class Client:
    """Submit and manage runs. Create with :meth:`connect` or from an existing pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self.store = PgStore(pool, schema)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        dsn: str | None = None,
        *,
        schema: str | None = None,
        settings: Settings | None = None,
        max_size: int = 4,
    ) -> AsyncIterator[Client]:
        """A client with its own small pool; ``?schema=`` / ``?search_path=`` in the URL work."""
        if dsn is None:
            settings = settings or Settings()
            if settings.database_url is None:
                raise ConfigError(
                    "no database URL: pass one or set WORKFLEET_DATABASE_URL",
                    env_var="WORKFLEET_DATABASE_URL",
                )
            resolved = settings.resolved_dsn()
        else:
            resolved = resolve_dsn(dsn)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            resolved.conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True},
        )
        await pool.open(wait=True)
        try:
            yield cls(pool, schema or resolved.schema)
        finally:
            await pool.close()

    async def submit(
        self,
        type: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> uuid.UUID:
        """Record the intent to run ``type``; return the run id (the existing one for a
        duplicate ``idempotency_key``). With ``conn``, the insert joins that connection's
        current transaction."""
        run = NewRun(type, payload, priority, run_at, delay, idempotency_key, max_attempts)
        [result] = await self.submit_many([run], conn=conn)
        return result.id

    async def submit_many(
        self, runs: Sequence[NewRun], *, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> list[Enqueued]:
        """Submit several runs in one round trip, in order; ``created`` is False for duplicates."""
        checked = [_check(r) for r in runs]
        if not checked:
            return []
        if conn is not None:
            return await enqueue_on(conn, self.store.q, checked)
        return await self.store.enqueue_many(checked)

    async def get(self, run_id: uuid.UUID) -> RunRecord | None:
        return await self.store.get(run_id)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        type_prefix: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest first; ``type_prefix`` is a type pattern such as ``billing.%``."""
        like = None if type_prefix is None else TypePattern.parse(type_prefix).like()
        return await self.store.list_runs(status=status, type_like=like, limit=limit)

    async def events(self, run_id: uuid.UUID) -> list[Event]:
        return await self.store.events(run_id)

    async def cancel(self, run_id: uuid.UUID) -> bool:
        """Cancel a pending or running run; False when it is missing or already finished."""
        return await self.store.cancel(run_id)

    async def redrive(self, run_id: uuid.UUID) -> bool:
        """Give a failed run fresh attempts; False when it is not failed."""
        return await self.store.redrive(run_id, (RunStatus.FAILED,))
