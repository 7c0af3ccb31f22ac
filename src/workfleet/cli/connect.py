"""What the CLI asks of the database layer: a small pool with the stores and the
:class:`~workfleet.operations.Operations` façade over them, the ``check`` probe, migrations.

The composition root of the CLI's database side, and the only module under ``cli/`` that names
:mod:`workfleet.db`. The driver and the stores are imported when a command first connects, not
when the CLI starts: ``workfleet --help`` and ``workfleet plugins`` never load psycopg.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from workfleet.operations import Operations
from workfleet.settings import Settings


@dataclass(frozen=True, slots=True)
class Connected:
    """One command's way in: the operations and the schema they act on."""

    ops: Operations
    schema: str


@dataclass(frozen=True, slots=True)
class Probe:
    """What ``workfleet check`` found: the server, and the schema's migration version."""

    server: str
    schema: str
    version: int | None
    latest: int


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Connected]:
    """A pool of two connections and the operations over it, for one command; the schema must
    be migrated to this release (:class:`~workfleet.errors.SchemaNotReadyError` otherwise)."""
    from workfleet.db.migrate import require_schema
    from workfleet.db.pool import open_pool
    from workfleet.db.schedules import PgSchedules
    from workfleet.db.status import PgStatus
    from workfleet.db.store import PgStore
    from workfleet.db.workflows import PgWorkflowStore

    resolved = settings.resolved_dsn()
    schema = resolved.schema
    pool = await open_pool(resolved.conninfo, max_size=2, connect_timeout=settings.connect_timeout)
    try:
        async with pool.connection() as conn:
            await require_schema(conn, schema)
        store = PgStore(pool, schema)
        ops = Operations(
            queue=store,
            reads=store,
            runs=store,
            status=PgStatus(pool, schema),
            schedules=PgSchedules(pool, schema),
            workflows=PgWorkflowStore(pool, schema),
            batches=store,
        )
        yield Connected(ops, schema)
    finally:
        await pool.close()


async def probe(settings: Settings) -> Probe:
    """Connect once and read the server's version and the schema's migration version; raises
    :class:`~workfleet.errors.StoreError` when the database cannot be reached."""
    from workfleet.db.migrate import latest_version, schema_version, server_version
    from workfleet.db.pool import open_pool

    resolved = settings.resolved_dsn()
    pool = await open_pool(resolved.conninfo, max_size=1, connect_timeout=settings.connect_timeout)
    try:
        async with pool.connection() as conn:
            server = server_version(conn)
            version = await schema_version(conn, resolved.schema)
    finally:
        await pool.close()
    return Probe(server, resolved.schema, version, latest_version())


async def migrate(settings: Settings) -> list[str]:
    """Apply pending migrations; the names (``0001_slug``) of those applied, oldest first."""
    from workfleet.db.migrate import migrate as run_migrations

    resolved = settings.resolved_dsn()
    applied = await run_migrations(resolved.conninfo, resolved.schema)
    return [f"{m.version:04d}_{m.name}" for m in applied]
