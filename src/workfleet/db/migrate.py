"""The migration runner: ordered ``NNNN_<slug>.sql`` files under an advisory lock.

Migrations are written without schema names; the runner sets ``search_path`` to the configured
schema inside each migration's transaction. Every migration is idempotent (``IF NOT EXISTS``), so
a database that simple-workflow created is adopted in place. Applied versions are recorded in
``<schema>.workfleet_schema_version`` with a checksum of the file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from workfleet.db.locks import lock_key
from workfleet.errors import SchemaNotReadyError, StoreError

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
VERSION_TABLE = "workfleet_schema_version"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def _migrations_dir() -> Path:
    packaged = resources.files("workfleet").joinpath("migrations")
    if packaged.is_dir():
        return Path(str(packaged))
    # editable installs and the source tree: the repository's top-level migrations/
    return Path(__file__).resolve().parents[3] / "migrations"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """All migrations, in version order. Raises ``StoreError`` on gaps or bad names."""
    folder = directory or _migrations_dir()
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise StoreError(f"migration file {path.name!r} is not named NNNN_<slug>.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StoreError(f"migration {expected:04d} is missing (found {migration.version:04d})")
    if not found:
        raise StoreError(f"no migrations found in {folder}")
    return found


def latest_version() -> int:
    return load_migrations()[-1].version


async def migrate(conninfo: str, schema: str) -> list[Migration]:
    """Apply pending migrations to ``schema``; return those applied (empty: up to date).

    Safe to run from many processes at once: an advisory lock serialises them and each
    migration commits with its version row.
    """
    migrations = load_migrations()
    ident = sql.Identifier(schema)
    applied: list[Migration] = []
    try:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(
                "SELECT pg_advisory_lock(hashtextextended(%s, 0))", [lock_key("migrate", schema)]
            )
            try:
                await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
                await conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.{} ("
                        " version INT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
                        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    ).format(ident, sql.Identifier(VERSION_TABLE))
                )
                cur = await conn.execute(
                    sql.SQL("SELECT version FROM {}.{}").format(
                        ident, sql.Identifier(VERSION_TABLE)
                    )
                )
                done = {row[0] for row in await cur.fetchall()}
                for migration in migrations:
                    if migration.version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
                        await conn.execute(migration.sql.encode())
                        await conn.execute(
                            sql.SQL(
                                "INSERT INTO {}.{} (version, name, checksum) VALUES (%s, %s, %s)"
                            ).format(ident, sql.Identifier(VERSION_TABLE)),
                            [migration.version, migration.name, migration.checksum],
                        )
                    applied.append(migration)
            finally:
                await conn.execute(
                    "SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                    [lock_key("migrate", schema)],
                )
    except psycopg.Error as exc:
        raise StoreError(f"migration failed: {type(exc).__name__}: {exc}") from exc
    return applied


def server_version(conn: psycopg.AsyncConnection[Any]) -> str:
    """The server's product and version, e.g. ``PostgreSQL 15.6``, as it reported them when
    the connection started (no statement is sent)."""
    return f"PostgreSQL {conn.info.parameter_status('server_version') or '?'}"


async def schema_version(conn: psycopg.AsyncConnection[Any], schema: str) -> int | None:
    """The highest applied migration in ``schema``, or None when workfleet never migrated it."""
    cur = await conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        [f"{sql.Identifier(schema).as_string(conn)}.{VERSION_TABLE}"],
    )
    row = await cur.fetchone()
    if not row or not row[0]:
        return None
    cur = await conn.execute(
        sql.SQL("SELECT max(version) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(VERSION_TABLE)
        )
    )
    row = await cur.fetchone()
    return None if row is None else row[0]


async def readable_version(conn: psycopg.AsyncConnection[Any], schema: str) -> int | None:
    """:func:`schema_version`, or the latest version when the connected role may not read the
    version table (the producer role of docs/security.md): its own statements then say
    whether the schema serves them, and it must not be refused for what it need not read."""
    try:
        return await schema_version(conn, schema)
    except psycopg.errors.InsufficientPrivilege:
        return latest_version()


async def require_schema(conn: psycopg.AsyncConnection[Any], schema: str) -> int:
    """Raise :class:`SchemaNotReadyError` unless ``schema`` is migrated to this release (a
    role that may not read the version table is not refused: see :func:`readable_version`)."""
    version = await readable_version(conn, schema)
    latest = latest_version()
    if version is None:
        raise SchemaNotReadyError(
            f"schema {schema!r} has no workfleet tables: run `workfleet migrate`"
        )
    if version < latest:
        raise SchemaNotReadyError(
            f"schema {schema!r} is at version {version}, this release needs {latest}: "
            "run `workfleet migrate`"
        )
    return version
