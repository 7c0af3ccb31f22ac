"""Apply ``docs/sql/roles.sql`` the way psql would, with uniquely named roles per test run."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROLES_SQL = Path(__file__).resolve().parents[2] / "docs" / "sql" / "roles.sql"
_VARIABLE = re.compile(r"""(?<!:):(?:"(\w+)"|'(\w+)')""")


def render(text: str, variables: dict[str, str]) -> str:
    """Substitute psql variables: ``:"x"`` as an identifier, ``:'x'`` as a literal (comment
    lines are dropped; psql does not substitute in them either)."""
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))

    def one(match: re.Match[str]) -> str:
        ident, literal = match.groups()
        if ident is not None:
            return sql.Identifier(variables[ident]).as_string()
        return sql.Literal(variables[literal]).as_string()

    return _VARIABLE.sub(one, text)


@dataclass(frozen=True)
class Roles:
    """Group roles from the script and a login role in each, all unique to one test."""

    producer: str
    worker: str
    reader: str

    def login(self, group: str) -> str:
        return f"{group}_login"

    @property
    def all(self) -> list[str]:
        groups = [self.producer, self.worker, self.reader]
        return [self.login(g) for g in groups] + groups


@asynccontextmanager
async def applied_roles(pg_dsn: str, schema: str) -> AsyncIterator[Roles]:
    """Create the roles, apply the script to ``schema``; drop everything afterwards (the server
    is shared: roles are cluster-wide, so names are unique and cleanup is unconditional)."""
    tag = f"wfsec_{uuid.uuid4().hex[:10]}"
    roles = Roles(f"{tag}_producer", f"{tag}_worker", f"{tag}_reader")
    script = render(
        ROLES_SQL.read_text("utf-8"),
        {
            "schema": schema,
            "producer": roles.producer,
            "worker": roles.worker,
            "reader": roles.reader,
        },
    )
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        try:
            await conn.execute(script.encode())
            for group in (roles.producer, roles.worker, roles.reader):
                await conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                        sql.Identifier(roles.login(group)), sql.Identifier(group)
                    )
                )
            yield roles
        finally:
            for role in roles.all:
                exists = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
                if await exists.fetchone():
                    await conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                    await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def dsn_as(pg_dsn: str, role: str) -> str:
    return psycopg.conninfo.make_conninfo(pg_dsn, user=role)
