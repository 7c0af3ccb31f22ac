"""Opening connection pools, and how every workfleet connection reads values.

Every pool workfleet opens (worker, CLI, client) goes through :func:`open_pool`, so they share
one connection setup: :func:`configure_connection` teaches psycopg to read the timestamps
``infinity`` and ``-infinity``, which a hand-written row may hold and which Python's
``datetime`` cannot represent. Without it, one such row would make every statement that returns
it fail in the driver — a claim would lease a whole batch and deliver none of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.datetime import TimestamptzLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from workfleet.dsn import redact
from workfleet.errors import StoreError

# Stand-ins for the infinite timestamps: the ends of Python's calendar.
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
FAR_PAST = datetime.min.replace(tzinfo=UTC)


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


def configure_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """Adapt ``conn`` as every workfleet connection is adapted (see the module docstring)."""
    conn.adapters.register_loader("timestamptz", _InfinityTolerantLoader)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    configure_connection(conn)


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
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo,
        min_size=min(min_size, max_size),
        max_size=max_size,
        open=False,
        kwargs=kwargs,
        configure=_configure,
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
