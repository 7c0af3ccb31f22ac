"""Shared fixtures: a real PostgreSQL for every test that needs one, isolated per test.

Where the server comes from, in order: ``WORKFLEET_TEST_DATABASE_URL``; a testcontainers
PostgreSQL when a Docker engine answers; an embedded ``pgserver`` under ``.pytest-pg/``.
The session creates its own database on that server (never touching what is there) and every
test gets a fresh, migrated schema in it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from workfleet.db.migrate import migrate
from workfleet.db.pool import open_pool
from workfleet.db.store import PgStore
from workfleet.dsn import resolve_dsn

ROOT = Path(__file__).resolve().parents[1]


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return False
    return True


def _server_dsn(stack: list[Any]) -> str:
    url = os.environ.get("WORKFLEET_TEST_DATABASE_URL")
    if url:
        return resolve_dsn(url).conninfo
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
        stack.append(container.stop)
        return str(container.get_connection_url())
    import pgserver

    data = ROOT / ".pytest-pg"
    # stopped when the session ends (its data is kept: the next session starts it in seconds)
    server = pgserver.get_server(str(data), cleanup_mode="stop")
    stack.append(server.cleanup)
    return str(server.get_uri())


def _with_dbname(conninfo: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(conninfo, dbname=dbname)


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """Conninfo of the PostgreSQL server the tests use (its maintenance database)."""
    stack: list[Any] = []
    try:
        yield _server_dsn(stack)
    finally:
        for stop in reversed(stack):
            stop()


@pytest.fixture(scope="session")
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    """Conninfo of a database created for this test session alone, dropped at the end."""
    name = f"workfleet_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_dbname(pg_server_dsn, name)
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def schema_name() -> str:
    """A schema name no other test uses."""
    return f"wf_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def schema(pg_dsn: str, schema_name: str) -> str:
    """A freshly migrated schema in the session database."""
    await migrate(pg_dsn, schema_name)
    return schema_name


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    # opened as workfleet opens its own pools, so rows read the same way
    pool = await open_pool(pg_dsn, max_size=8, application_name=None)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def pg_store(pg_pool: AsyncConnectionPool[Any], schema: str) -> PgStore:
    return PgStore(pg_pool, schema)


@pytest.fixture
def run_sql(pg_dsn: str, schema: str) -> Any:
    """Run SQL as a producer would, with ``search_path`` set to the test's schema."""

    async def _run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            cur = await conn.execute(statement.encode(), params)
            return await cur.fetchall() if cur.description else []

    return _run
