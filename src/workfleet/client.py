"""The Python producer API: submit runs, look at them, cancel or redrive them.

Producers in other languages use plain SQL (``INSERT INTO workflow_run ...``); this client adds
input checks before anything reaches the database, idempotency handling, batch submits in one
round trip, and submits inside the caller's own transaction so the run commits (or rolls back)
with the caller's business writes::

    async with Client.connect("postgresql://app@db/app?schema=workflow") as client:
        run_id = await client.submit("billing.invoice.v1", {"invoice_id": "INV-1"},
                                     idempotency_key="invoice:INV-1")
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from workfleet.checkpoints import StepRecord, signal_json
from workfleet.db.store import PgStore, enqueue_on
from workfleet.db.workflows import PgWorkflowStore
from workfleet.dsn import ResolvedDsn, redact, resolve_dsn, validate_schema_name
from workfleet.errors import ConfigError, RunNotFoundError, StoreDataError, StoreError
from workfleet.models import Enqueued, Event, NewRun, RunRecord, RunStatus, check_new_run
from workfleet.patterns import TypePattern
from workfleet.settings import Settings, load_settings

__all__ = ["Client", "check_new_run"]

DEFAULT_CONNECT_TIMEOUT = 10.0
MAX_LIST_LIMIT = 10_000


def _resolve(dsn: str | None, settings: Settings | None) -> ResolvedDsn:
    if dsn is not None:
        return resolve_dsn(dsn)
    # load_settings turns environment problems into a ConfigError naming the variable
    return (settings or load_settings()).resolved_dsn()


def _check_conninfo(conninfo: str) -> None:
    """Fail fast on a malformed connection string instead of timing out on connects."""
    try:
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"invalid database URL: {redact(str(exc))}") from None


class Client:
    """Submit and manage runs. Create with :meth:`connect`, or wrap an existing pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = validate_schema_name(schema)
        self.store = PgStore(pool, self.schema)
        self.workflows = PgWorkflowStore(pool, self.schema)

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
        """A client with its own small pool, closed on exit.

        Without ``dsn`` the URL comes from ``settings`` (default: the environment,
        ``WORKFLEET_DATABASE_URL`` or ``DATABASE_URL``). The schema is ``schema`` if given, else
        the URL's ``?schema=`` / ``?search_path=``, else ``workflow``. Raises
        :class:`ConfigError` for unusable configuration and :class:`StoreError` when the
        database cannot be reached within the connect timeout.
        """
        resolved = _resolve(dsn, settings)
        _check_conninfo(resolved.conninfo)
        timeout = settings.connect_timeout if settings is not None else DEFAULT_CONNECT_TIMEOUT
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            resolved.conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True},
            name="workfleet-client",
        )
        try:
            await pool.open(wait=True, timeout=timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise StoreError(
                f"cannot connect to {redact(resolved.conninfo)} within {timeout:g}s"
            ) from exc
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
        """Record the intent to run ``type``; return the run id.

        A duplicate ``idempotency_key`` returns the existing run's id and creates nothing. With
        ``conn`` the insert joins that connection's transaction and commits or rolls back with it.
        """
        run = NewRun(
            type=type,
            payload=payload,
            priority=priority,
            run_at=run_at,
            delay=delay,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts,
        )
        [result] = await self.submit_many([run], conn=conn)
        return result.id

    async def submit_many(
        self, runs: Sequence[NewRun], *, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> builtins.list[Enqueued]:
        """Submit ``runs`` in one statement; results in input order, ``created`` False for
        duplicate keys. Every run is checked before any is sent, so a bad one sends none."""
        checked = [check_new_run(r) for r in runs]
        if not checked:
            return []
        if conn is not None:
            return await enqueue_on(conn, self.store.q, checked)
        return await self.store.enqueue_many(checked)

    async def get(self, run_id: uuid.UUID) -> RunRecord | None:
        """The run with ``run_id``, or None when there is none."""
        return await self.store.get(run_id)

    async def list(
        self,
        status: RunStatus | str | None = None,
        type_prefix: str | None = None,
        limit: int = 50,
    ) -> builtins.list[RunRecord]:
        """Runs newest first, soft-deleted ones left out.

        ``type_prefix`` is a type pattern (``billing.%`` or an exact type), matched literally:
        ``_`` and ``%`` inside it are not wildcards.
        """
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        wanted = None if status is None else RunStatus(status)
        like = None if type_prefix is None else TypePattern.parse(type_prefix).like()
        return await self.store.list_runs(status=wanted, type_like=like, limit=limit)

    async def events(self, run_id: uuid.UUID) -> builtins.list[Event]:
        """The run's audit trail, oldest first (empty for an unknown id)."""
        return await self.store.events(run_id)

    async def cancel(self, run_id: uuid.UUID) -> bool:
        """Cancel a pending or running run; False when it is missing or already finished.

        A running executor sees ``run.cancelled`` promptly; nothing it does afterwards is written.
        """
        return await self.store.cancel(run_id)

    async def redrive(self, run_id: uuid.UUID) -> bool:
        """Give a failed run a fresh set of attempts, runnable now; False when it is not failed."""
        return await self.store.redrive(run_id, (RunStatus.FAILED,))

    # --- durable workflows ------------------------------------------------------------------

    async def signal(
        self,
        run_id: uuid.UUID,
        name: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
    ) -> int:
        """Put signal ``name`` in a workflow run's mailbox and return the signal's id; a run
        waiting for it wakes at once, one that waits later takes it then. With
        ``idempotency_key`` a repeated send returns the first signal's id and adds nothing.

        ``ValueError`` for a name or payload the database cannot store (checked first);
        :class:`~workfleet.errors.RunNotFoundError` when there is no such run.
        """
        payload_json = signal_json(name, payload, idempotency_key)
        try:
            sent = await self.workflows.send_signal(run_id, name, payload_json, idempotency_key)
        except StoreDataError as exc:
            raise RunNotFoundError(f"no run {run_id} to signal") from exc
        return sent.id

    async def steps(self, run_id: uuid.UUID) -> builtins.list[StepRecord]:
        """A workflow run's checkpoints, oldest first (empty for other runs)."""
        return await self.workflows.load_steps(run_id)

    async def resume(self, run_id: uuid.UUID) -> bool:
        """Continue a failed workflow from its failed step (finished steps are kept); False
        when the run is not failed."""
        return await self.workflows.resume(run_id) is not None

    async def wait_result(
        self, run_id: uuid.UUID, timeout: float | None = None, *, poll: float = 0.05
    ) -> RunRecord:
        """Wait until the run is final (succeeded, failed or cancelled) and return it: its
        ``result`` or ``last_error``. Raises :class:`TimeoutError` after ``timeout`` seconds
        and :class:`~workfleet.errors.RunNotFoundError` for an unknown id."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = poll
        while True:
            record = await self.store.get(run_id)
            if record is None:
                raise RunNotFoundError(f"no run {run_id}")
            if record.status.is_terminal:
                return record
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"run {run_id} is still {record.status} after {timeout:g}s")
            wait = delay if deadline is None else min(delay, max(deadline - loop.time(), 0))
            await asyncio.sleep(wait)
            delay = min(delay * 1.5, 1.0)  # quick for short runs, one query a second after
