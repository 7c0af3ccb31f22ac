"""The LISTEN connection on its own, against PostgreSQL: every notification is delivered once,
whether it arrives while the connection idles or during its keepalive query, and a callback
that raises costs neither the connection nor the notifications after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psycopg
import structlog

from tests.waiting import eventually
from workfleet.db.listener import Listener
from workfleet.db.notifications import channel_name


@asynccontextmanager
async def listening(
    pg_dsn: str, schema: str, on_inserted: Callable[[str], None], keepalive: float = 30.0
) -> AsyncIterator[Listener]:
    connected: list[bool] = []
    listener = Listener(
        pg_dsn,
        schema,
        on_inserted=on_inserted,
        on_cancelled=lambda run_id: None,
        on_any=lambda: None,
        on_connected=connected.append,
        on_disconnected=lambda: None,
        log=structlog.get_logger(),
        keepalive=keepalive,
    )
    task = asyncio.create_task(listener.run())
    try:
        await eventually(lambda: bool(connected), 10)
        yield listener
    finally:
        listener.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def notify(pg_dsn: str, schema: str, payloads: list[str]) -> None:
    """One transaction per payload, as one INSERT statement each would send them."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        for payload in payloads:
            await conn.execute("SELECT pg_notify(%s, %s)", [channel_name(schema), payload])


async def test_every_notification_is_delivered_once_across_keepalive_queries(
    pg_dsn: str, schema: str
) -> None:
    """A keepalive every 5 ms: many notifications arrive while its query runs, and psycopg's
    notify handler must deliver those; the socket's reader delivers the rest."""
    seen: list[str] = []
    async with listening(pg_dsn, schema, seen.append, keepalive=0.005):
        types = [f"t{i}.v1" for i in range(300)]
        await notify(pg_dsn, schema, [f"i:{t}" for t in types])
        await eventually(lambda: len(seen) >= len(types), 10)
        await asyncio.sleep(0.1)  # nothing delivered twice arrives late
        assert seen == types


async def test_a_callback_that_raises_costs_no_later_notification(pg_dsn: str, schema: str) -> None:
    seen: list[str] = []

    def on_inserted(run_type: str) -> None:
        if run_type == "boom.v1":
            raise RuntimeError("a bug in a callback")
        seen.append(run_type)

    async with listening(pg_dsn, schema, on_inserted) as listener:
        await notify(pg_dsn, schema, ["i:boom.v1", "i:after.v1"])
        await eventually(lambda: seen == ["after.v1"], 10)
        assert listener.connected
        assert listener.reconnects == 0


async def test_a_cancellation_reaches_its_callback(pg_dsn: str, schema: str) -> None:
    cancelled: list[uuid.UUID] = []
    run_id = uuid.uuid4()
    listener = Listener(
        pg_dsn,
        schema,
        on_inserted=lambda run_type: None,
        on_cancelled=cancelled.append,
        on_any=lambda: None,
        on_connected=lambda again: None,
        on_disconnected=lambda: None,
        log=structlog.get_logger(),
    )
    task = asyncio.create_task(listener.run())
    try:
        await eventually(lambda: listener.connected, 10)
        await notify(pg_dsn, schema, [f"c:{run_id}"])
        await eventually(lambda: cancelled == [run_id], 10)
    finally:
        listener.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
