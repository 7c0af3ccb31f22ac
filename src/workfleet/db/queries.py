"""Named SQL queries loaded from the ``.sql`` files beside this module.

Each file holds blocks introduced by ``-- name: <query_name>``. A line ``-- include: <name>``
in a block stands for the whole text of that block (statements that share a part, such as the
two claims, keep it once). ``{schema}`` placeholders are filled with a quoted identifier through
:mod:`psycopg.sql`; nothing else is ever formatted in.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from contextlib import AbstractAsyncContextManager
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from workfleet.db.lanes import Lanes, LaneUse
from workfleet.db.pool import tolerate_infinity
from workfleet.errors import PermissionDeniedError, StoreDataError, StoreError

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_INCLUDE = re.compile(r"^--\s*include:\s*(\w+)\s*$", re.MULTILINE)


@cache
def raw_queries() -> dict[str, str]:
    """All named queries of all ``sql/*.sql`` files, unformatted."""
    queries: dict[str, str] = {}
    folder = resources.files("workfleet.db").joinpath("sql")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        matches = list(_NAME.finditer(text))
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            name = match.group(1)
            if name in queries:
                raise RuntimeError(f"duplicate query name {name!r} in {entry.name}")
            queries[name] = text[match.end() : end].strip()
    # one level: an included block includes nothing itself
    return {name: _INCLUDE.sub(lambda m: queries[m.group(1)], q) for name, q in queries.items()}


class Queries:
    """The named queries composed for one schema. Build once per store, reuse forever.

    Each query is rendered to its final text once, here: a composed query is rendered again on
    every execution (quoting its identifiers, joining its parts), which cost a claim 10-13 µs.
    """

    def __init__(self, schema: str) -> None:
        self.schema = schema
        ident = sql.Identifier(schema)
        self._composed = {
            name: sql.SQL(sql.SQL(text).format(schema=ident).as_string())
            for name, text in raw_queries().items()
        }

    def __getitem__(self, name: str) -> sql.SQL:
        return self._composed[name]


# Statements driven by parameter arrays (``unnest(%(ids)s::uuid[], ...)``) are never prepared.
# A prepared statement switches to a generic plan after five runs, and a generic plan cannot see
# the arrays' lengths: it guesses ten input rows, trusts a stale "no leased rows" statistic and
# picks a nested loop over the input for each leased row, which is quadratic (1,000 outcomes:
# 30 ms with a custom plan, 270 ms generic, measured on PostgreSQL 15). Planning them afresh
# costs about 0.25 ms per statement, a few microseconds per run in a batch.
# Statements whose filters are optional (``%(x)s IS NULL OR ...``) are planned afresh too: a
# generic plan must serve every combination of filters and serves none of them well.
UNPREPARED = frozenset(
    {
        "complete_many",
        "heartbeat_many",
        "query_runs",
        "count_runs",
        "match_run_ids",
        "get_runs",
        "cancel_many",
        "redrive_many",
        "prefix_stats",
    }
)

# The worker's hot path keeps psycopg's C timestamp loader: these statements return no
# timestamp, or clamp the infinite ones in SQL (see workfleet.db.pool). On a lane they run on
# the lane's own cursors, kept between calls (see LaneUse.cursor).
HOT_PATH = frozenset(
    {
        "claim",
        "claim_ready",
        "next_due",
        "complete_many",
        "heartbeat_many",
        "extend_lease",
        "reclaim_expired",
    }
)

# The claims: on a lane they go through libpq directly, prepared once per connection with their
# parameters dumped once per distinct set (see workfleet.db.direct). Prepared, so never in
# UNPREPARED; rows as tuples.
DIRECT = frozenset({"claim", "claim_ready"})

# Errors that come from what a statement was given or found (a value out of range, a broken
# invariant, a limit), not from the connection: the same statement fails the same way again.
DATA_ERRORS = (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded)


def store_error(what: str, exc: psycopg.Error) -> StoreError:
    """The error to raise for driver error ``exc`` of statement ``what`` (raise it ``from exc``):
    :class:`StoreDataError` when the statement's data, not the connection, is at fault (the
    :data:`DATA_ERRORS`), else :class:`StoreError`. The one classification of every statement,
    pooled (:func:`fetch`) or on a transaction's cursor."""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return PermissionDeniedError(
            f"{what} failed: the connected role lacks a grant ({exc.diag.message_primary}); "
            "docs/security.md lists what each role may do"
        )
    kind = StoreDataError if isinstance(exc, DATA_ERRORS) else StoreError
    return kind(f"{what} failed: {type(exc).__name__}: {exc}")


async def fetch(
    connection: AbstractAsyncContextManager[psycopg.AsyncConnection[Any]],
    queries: Queries,
    name: str,
    params: dict[str, Any],
) -> list[dict[str, Any]]:
    """Run one named query on ``connection`` (a pooled connection or a :class:`Lanes` lane);
    rows as dicts (empty for no result set).

    Driver errors become :class:`StoreError` naming the query, the driver error kept as cause;
    :class:`StoreDataError` when the statement's data, not the connection, is at fault.
    Queries in :data:`UNPREPARED` are planned for their actual parameters on every call; the
    others follow the driver's default (prepared from the fifth call on).
    """
    return await _fetch(connection, queries, name, params, dict_row)


async def fetch_tuples(
    connection: AbstractAsyncContextManager[psycopg.AsyncConnection[Any]],
    queries: Queries,
    name: str,
    params: dict[str, Any],
) -> list[tuple[Any, ...]]:
    """:func:`fetch` with rows as tuples in the statement's column order: for the hot path's
    batches, where a dict per row costs about a microsecond."""
    return await _fetch(connection, queries, name, params, tuple_row)


async def _fetch(
    connection: AbstractAsyncContextManager[psycopg.AsyncConnection[Any]],
    queries: Queries,
    name: str,
    params: dict[str, Any],
    row_factory: Any,
) -> list[Any]:
    prepare = False if name in UNPREPARED else None
    try:
        async with connection as conn:
            kept = None
            hot = name in HOT_PATH
            if hot and isinstance(connection, LaneUse):
                # a lane sends the claims itself (see LaneUse.direct) and keeps its cursors for
                # the rest of the hot path (see LaneUse.cursor); others make one
                if name in DIRECT and row_factory is tuple_row:
                    direct = connection.direct()
                    if direct is not None:
                        return await direct.fetch(name, queries[name], params)
                kept = connection.cursor(row_factory)
            if kept is not None:
                return await _execute(kept, queries[name], params, prepare)
            async with conn.cursor(row_factory=row_factory) as cur:
                if not hot:
                    tolerate_infinity(cur)
                return await _execute(cur, queries[name], params, prepare)
    except psycopg.Error as exc:
        raise store_error(name, exc) from exc


async def _execute(
    cur: psycopg.AsyncCursor[Any], query: sql.SQL, params: dict[str, Any], prepare: bool | None
) -> list[Any]:
    await cur.execute(query, params, prepare=prepare)
    # not ``cur.description``: it builds a Column per field on every call
    result = cur.pgresult
    return await cur.fetchall() if result is not None and result.nfields else []


class QueryStore:
    """Base of the PostgreSQL stores: a pool, a schema and its composed named queries.

    ``lanes`` keeps a connection per hot caller (see :mod:`workfleet.db.lanes`); call
    :meth:`close` before closing the pool.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self.q = Queries(schema)
        self.lanes = Lanes(pool)

    async def _fetch(
        self, name: str, params: dict[str, Any], *, lane: Hashable | None = None
    ) -> list[dict[str, Any]]:
        """Run ``name`` on a pooled connection, or on the connection kept for ``lane``."""
        return await fetch(self._connection(lane), self.q, name, params)

    async def _fetch_tuples(
        self, name: str, params: dict[str, Any], *, lane: Hashable | None = None
    ) -> list[tuple[Any, ...]]:
        """:meth:`_fetch` with rows as tuples (see :func:`fetch_tuples`)."""
        return await fetch_tuples(self._connection(lane), self.q, name, params)

    def _connection(
        self, lane: Hashable | None
    ) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A pooled connection, or the connection kept for ``lane``."""
        return self.pool.connection() if lane is None else self.lanes.connection(lane)

    async def close(self) -> None:
        """Give the connections kept by lanes back to the pool."""
        await self.lanes.close()
