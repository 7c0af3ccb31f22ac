"""Opening connection pools, and reading timestamps a hand-written row may hold.

Every pool workfleet opens (worker, CLI, client) goes through :func:`open_pool`.

``infinity`` and ``-infinity`` are valid ``timestamptz`` values that Python's ``datetime``
cannot represent: without care, one such row makes every statement that returns it fail in the
driver (a claim would lease a whole batch and deliver none of it). They are read as
:data:`FAR_FUTURE` and :data:`FAR_PAST`: the hot path's statements clamp them in SQL (the
driver's C loader stays in use: a Python loader costs about a tenth of a no-op run's CPU), and
every other statement reads through :func:`tolerate_infinity`.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.abc import AdaptContext
from psycopg.types.datetime import TimestamptzLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from workfleet.dsn import redact
from workfleet.errors import StoreError

# Stand-ins for the infinite timestamps, a year inside each end of Python's calendar so that no
# session time zone can push them out of it (the claim's SQL clamps to the same two values).
FAR_FUTURE = datetime(9998, 12, 31, tzinfo=UTC)
FAR_PAST = datetime(2, 1, 1, tzinfo=UTC)


class _InfinityTolerantLoader(TimestamptzLoader):
    """``timestamptz`` in text format, with ``±infinity`` read as the ends of the calendar."""

    def load(self, data: Any) -> datetime:
        raw = bytes(data)
        if raw == b"infinity":
            return FAR_FUTURE
        if raw == b"-infinity":
            return FAR_PAST
        value: datetime = super().load(data)
        return value


def _cause(exc: BaseException) -> str:
    """libpq's own words for why a connection failed, on one line, without the password."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact(" ".join(lines)) or type(exc).__name__


async def _try_connect(conninfo: str, timeout: float, kwargs: dict[str, Any]) -> None:
    """Connect once, directly: a pool retries a refused connection quietly until its timeout,
    so a database that is down, a wrong host, database, user or password would read as a bare
    PoolTimeout after ``timeout`` seconds. This says which, at once."""
    try:
        conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                conninfo, connect_timeout=max(2, math.ceil(timeout)), **kwargs
            ),
            timeout,
        )
    except psycopg.OperationalError as exc:
        raise StoreError(
            f"cannot connect to the database {redact(conninfo)}: {_cause(exc)}"
        ) from exc
    except TimeoutError as exc:
        raise StoreError(
            f"cannot connect to the database {redact(conninfo)}: no answer within {timeout:g}s"
        ) from exc
    await conn.close()


def tolerate_infinity(context: AdaptContext) -> None:
    """Read ``±infinity`` timestamps on ``context`` (a cursor or a connection) as
    :data:`FAR_FUTURE` / :data:`FAR_PAST`."""
    context.adapters.register_loader("timestamptz", _InfinityTolerantLoader)


async def open_pool(
    conninfo: str,
    *,
    max_size: int,
    min_size: int = 1,
    connect_timeout: float = 10.0,
    name: str = "workfleet",
    application_name: str | None = "workfleet",
) -> AsyncConnectionPool[Any]:
    """Open an autocommit pool and wait for its first connection.

    Raises :class:`StoreError` naming the problem (never the password) when the database cannot
    be reached within ``connect_timeout`` seconds.
    """
    kwargs: dict[str, Any] = {"autocommit": True}
    if application_name:
        kwargs["application_name"] = application_name
    await _try_connect(conninfo, connect_timeout, kwargs)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo,
        min_size=min(min_size, max_size),
        max_size=max_size,
        open=False,
        kwargs=kwargs,
        timeout=connect_timeout,
        name=name,
    )
    try:
        await pool.open(wait=True, timeout=connect_timeout)
    except (psycopg.Error, TimeoutError, PoolTimeout) as exc:
        await pool.close()
        raise StoreError(
            f"cannot connect to the database {redact(conninfo)} within {connect_timeout:g}s: "
            f"{type(exc).__name__}"
        ) from exc
    return pool
