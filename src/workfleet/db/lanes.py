"""Lanes: pooled connections that a hot caller keeps between its statements.

:mod:`psycopg_pool` hands out its idle connections first in, first out, so a loop that claims
every few milliseconds lands on a different server process each time, one that has been asleep
and whose caches are cold. Measured on PostgreSQL 15 with four pooled connections, a one-run
claim took 0.94 ms through the pool against 0.69 ms on one connection used over and over (p99
1.8 ms against 1.3 ms). A lane is a connection taken from the pool once and kept by one caller
(a lease loop's claims, the completer's writes) for as long as it works.

Contract:

- A lane is only ever used by one statement at a time; a caller that finds its lane busy (two
  lease loops with the same filter) gets an ordinary pooled connection for that call.
- At most ``pool.max_size - reserve`` connections are kept, so the pool always has ``reserve``
  connections for everything else (heartbeats, metrics, maintenance); past that, lanes are
  ordinary pooled calls.
- On any exception (a broken connection, a cancelled statement) the connection goes back to
  the pool, which discards it if it is unusable, and the next call starts a fresh lane. A lane
  is also handed back after ``max_age`` seconds so the pool's own lifetime and health policies
  still apply to it.
- :meth:`close` returns every idle lane before the pool closes; a lane in use when it is called
  goes back at the end of its statement.
- A block can also be entered at once, from a callback (:meth:`LaneUse.take_now`): only on a
  lane that exists and is idle. It leaves as any block does, or by :meth:`LaneUse.abandon`
  when its statement's answer will never be read (the lane is dropped, its connection closed
  and handed back to the pool in the background).
- A lane keeps the cursors its caller asks for (:meth:`LaneUse.cursor`, one per row shape),
  and its direct statements (:meth:`LaneUse.direct`, see :mod:`workfleet.db.direct`); they go
  with the lane, and a pooled call has neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from workfleet.db.direct import Direct


@dataclass(slots=True)
class _Lane:
    conn: psycopg.AsyncConnection[Any]
    since: float
    busy: bool = False
    cursors: dict[Any, psycopg.AsyncCursor[Any]] = field(default_factory=dict)
    direct: Direct | None = None


class Lanes:
    """Connections of ``pool`` kept per caller key (see the module's contract)."""

    def __init__(
        self, pool: AsyncConnectionPool[Any], *, reserve: int = 2, max_age: float = 60.0
    ) -> None:
        self.pool = pool
        self.reserve = reserve
        self.max_age = max_age
        self._lanes: dict[Hashable, _Lane] = {}
        self._closed = False
        self._returning: set[asyncio.Task[None]] = set()  # abandoned lanes on their way back

    @property
    def held(self) -> int:
        """Connections currently kept by lanes."""
        return len(self._lanes)

    def connection(self, key: Hashable) -> LaneUse:
        """The lane of ``key`` (taken from the pool on first use), or a pooled connection, for
        one ``async with`` block."""
        return LaneUse(self, key)

    async def close(self) -> None:
        """Hand every idle lane back to the pool; lanes in use follow when their call ends."""
        self._closed = True
        await self.release_idle()

    async def release_idle(self) -> None:
        """Hand every idle lane back to the pool, where ``pool.check()`` can test it (after the
        server restarted, say); the next call of each caller takes a fresh one."""
        for key, lane in list(self._lanes.items()):
            if not lane.busy:
                del self._lanes[key]
                await self.pool.putconn(lane.conn)


class LaneUse:
    """One ``async with`` block's use of a lane (see :meth:`Lanes.connection`).

    A plain class rather than an ``asynccontextmanager``: its generator machinery is a
    measurable part of a claim on the pickup path, where every step runs with cold caches.
    """

    __slots__ = ("_key", "_lane", "_lanes", "_pooled")

    def __init__(self, lanes: Lanes, key: Hashable) -> None:
        self._lanes = lanes
        self._key = key
        self._lane: _Lane | None = None
        self._pooled: AbstractAsyncContextManager[psycopg.AsyncConnection[Any]] | None = None

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        lanes = self._lanes
        lane = lanes._lanes.get(self._key)
        if lane is None and not lanes._closed and lanes.held < lanes.pool.max_size - lanes.reserve:
            lane = _Lane(await lanes.pool.getconn(), time.monotonic())
            lanes._lanes[self._key] = lane
        if lane is None or lane.busy:
            self._pooled = pooled = lanes.pool.connection()
            conn: psycopg.AsyncConnection[Any] = await pooled.__aenter__()
            return conn
        lane.busy = True
        self._lane = lane
        return lane.conn

    def cursor(self, row_factory: Any) -> psycopg.AsyncCursor[Any] | None:
        """The lane's own cursor making rows with ``row_factory``, made on its first use and
        kept with the lane (None when this block runs on a pooled connection).

        A cursor costs 6.5 µs to make and close back to back, but 110-125 µs after a few
        milliseconds of other work, as every claim on a pickup's path comes (measured)."""
        lane = self._lane
        if lane is None:
            return None
        cur = lane.cursors.get(row_factory)
        if cur is None:
            cur = lane.cursors[row_factory] = lane.conn.cursor(row_factory=row_factory)
        return cur

    def take_now(self) -> Direct | None:
        """Enter this block at once, without waiting: on the lane of its key if there is one
        and it is idle, whose direct statements are returned. None: nothing was taken (enter
        with ``async with`` instead). Leave with :meth:`__aexit__` or :meth:`abandon`."""
        lanes = self._lanes
        lane = lanes._lanes.get(self._key)
        if lane is None or lane.busy or lanes._closed:
            return None
        lane.busy = True
        self._lane = lane
        return self.direct()

    def abandon_unsent(self) -> None:
        """Leave a block taken by :meth:`take_now` that sent nothing."""
        if self._lane is not None:
            self._lane.busy = False
            self._lane = None

    def abandon(self) -> None:
        """Leave a block whose statement's answer will never be read: the lane is dropped, its
        connection closed and handed back to the pool (which discards it) in the background."""
        lane, lanes = self._lane, self._lanes
        if lane is None:
            return
        self._lane = None
        lane.busy = False
        if lanes._lanes.get(self._key) is lane:
            del lanes._lanes[self._key]
        lane.conn.pgconn.finish()
        task = asyncio.get_running_loop().create_task(lanes.pool.putconn(lane.conn))
        lanes._returning.add(task)
        task.add_done_callback(lanes._returning.discard)

    def direct(self) -> Direct | None:
        """The lane's direct statements, made on first use and kept with the lane (None when
        this block runs on a pooled connection)."""
        lane = self._lane
        if lane is None:
            return None
        if lane.direct is None:
            lane.direct = Direct(lane.conn)
        return lane.direct

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pooled is not None:
            await self._pooled.__aexit__(exc_type, exc, tb)
            return
        lane, lanes = self._lane, self._lanes
        if lane is None:
            return
        lane.busy = False
        if exc_type is None and not lanes._closed and time.monotonic() - lane.since < lanes.max_age:
            return
        # an exception (the connection may be broken), a close, or its age: back to the pool,
        # which tests or discards it; the next call takes a fresh lane
        del lanes._lanes[self._key]
        await lanes.pool.putconn(lane.conn)
