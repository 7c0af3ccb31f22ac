"""The LISTEN connection: one per worker, outside the pool, reconnecting by itself.

NOTIFY is a hint and polling is the truth: a lost notification only delays a run until the
next poll, and after every (re)connect the runtime is told to look again because notifications
sent while it was disconnected are gone.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from structlog.typing import FilteringBoundLogger

from workfleet.db.notifications import Cancelled, Runnable, channel_name, decode

__all__ = ["LISTENER_APPLICATION_NAME", "Listener", "channel_name"]

LISTENER_APPLICATION_NAME = "workfleet-listener"


class Listener:
    """Delivers the wake-ups of :mod:`workfleet.db.notifications` to three callbacks: runs of a
    type became runnable, runs of any type did, a run was cancelled."""

    def __init__(
        self,
        conninfo: str,
        schema: str,
        *,
        on_inserted: Callable[[str], None],
        on_cancelled: Callable[[uuid.UUID], None],
        on_any: Callable[[], None],
        on_connected: Callable[[bool], None],
        on_disconnected: Callable[[], None],
        log: FilteringBoundLogger,
        keepalive: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.conninfo = conninfo
        self.channel = channel_name(schema)
        self.on_inserted = on_inserted
        self.on_cancelled = on_cancelled
        self.on_any = on_any
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.log = log
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.connected = False
        self.reconnects = 0
        self._stopping = False
        self._conn: psycopg.AsyncConnection[Any] | None = None

    def dispatch(self, payload: str) -> None:
        notification = decode(payload)
        if isinstance(notification, Cancelled):
            self.on_cancelled(notification.run_id)
        elif isinstance(notification, Runnable):
            if notification.run_type is None:
                self.on_any()
            else:
                self.on_inserted(notification.run_type)
        else:
            self.log.warning("ignoring a notification this release does not know")

    async def run(self) -> None:
        """Listen until :meth:`stop`; reconnect with jittered backoff on any connection error."""
        delay = 0.5
        ever_connected = False
        while not self._stopping:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=max(int(self.connect_timeout), 1),
                    application_name=LISTENER_APPLICATION_NAME,
                ) as conn:
                    self._conn = conn
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.connected = True
                    if ever_connected:
                        self.reconnects += 1
                        self.log.info("listener reconnected", reconnects=self.reconnects)
                    self.on_connected(ever_connected)
                    ever_connected = True
                    delay = 0.5
                    # notifications that arrive during the keepalive query
                    conn.add_notify_handler(lambda notify: self._deliver(notify.payload))
                    while not self._stopping:
                        await self._listen(conn)
                        if not self._stopping:
                            # every keepalive seconds: prove the connection is still alive
                            await conn.execute("SELECT 1")
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if self._stopping:
                    break
                if self.connected or not ever_connected:
                    self.log.warning(
                        "listener connection lost; polling until it is back",
                        error=str(exc).strip().splitlines()[0] if str(exc) else "",
                        retry_in=round(delay, 2),
                    )
            finally:
                self._conn = None
                if self.connected:
                    self.connected = False
                    self.on_disconnected()
            if self._stopping:
                break
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311
            delay = min(delay * 2, 30.0)

    def _deliver(self, payload: str) -> None:
        """:meth:`dispatch`, keeping the listener alive whatever a callback raises."""
        try:
            self.dispatch(payload)
        except Exception:  # a bug in a callback must not cost the worker its wake-ups
            self.log.exception("handling a notification failed", payload=payload[:100])

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Deliver notifications for ``keepalive`` seconds; raise ``psycopg.OperationalError``
        if the connection is lost meanwhile.

        The socket's reader callback reads them itself (``consume_input``, then ``notifies``
        until none is left, as psycopg's ``notifies()`` does), so a notification reaches its
        lease loop in that callback: no generator and no task switch between the socket and
        the wake-up. Nothing else uses the connection meanwhile; the keepalive query runs with
        the reader removed, and psycopg hands what arrives during it to the notify handler.
        """
        loop = asyncio.get_running_loop()
        pgconn = conn.pgconn
        encoding = conn.info.encoding
        fd = pgconn.socket
        failed: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                pgconn.consume_input()
            except psycopg.Error as exc:
                loop.remove_reader(fd)
                if not failed.done():
                    failed.set_exception(psycopg.OperationalError(str(exc)))
                return
            while (notify := pgconn.notifies()) is not None:
                self._deliver(notify.extra.decode(encoding, "replace"))

        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(failed, self.keepalive)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)

    def stop(self) -> None:
        """Stop after the current wait; the owner also cancels the task running :meth:`run`."""
        self._stopping = True
