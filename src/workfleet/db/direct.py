"""The claim, sent on a lane's libpq handle directly.

A lease loop's claim is one prepared statement whose parameters hardly change (the loop's
filter, worker id and lease, and its free slots). Through a psycopg cursor every call still
converts the query, dumps every parameter, looks its prepared statement up, takes the
connection's lock and waits for the answer through a generator, a future per step. At 50 runs a
second each of those steps runs with cold caches, and together they are about a third of a
pickup: measured on one connection with a framework-free loop, commit to claimed row took
1.05 ms (p50) through a cursor and 0.80 ms this way (docs/performance.md, "Pickup, sixth
pass").

Here a statement is prepared once per connection, its parameters are dumped once per distinct
set of values, and a call is: send, wait for the socket to answer, load the rows with the
connection's own loaders.

Contract:

- Only on a lane (:meth:`workfleet.db.lanes.LaneUse.direct`): one statement at a time on its
  connection, which is in autocommit and listens to nothing.
- Errors are psycopg's, as a cursor would raise them: the server's refusal as the error class
  of its SQLSTATE, a broken connection as :class:`psycopg.OperationalError`.
- A call that ends while its statement is on the wire (cancelled, or the connection failed)
  closes the connection: the lane leaves on that exception, and the pool discards it.
- A prepared statement is named after its text and parameter types, so a connection that
  comes back in a new lane reuses what it has, and one that lost it (a ``DEALLOCATE``) is
  prepared again.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg._queries import PostgresQuery  # the query conversion psycopg's cursors use
from psycopg.adapt import Transformer

__all__ = ["Direct"]

# Distinct parameter sets remembered per connection before it starts over (a loop's claims
# differ only in their limit, from 1 to its concurrency)
BOUND_SETS = 512

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
_DUPLICATE = "42P05"  # duplicate_prepared_statement


class _Bound:
    """One statement with one set of parameters, dumped."""

    __slots__ = ("formats", "name", "params", "query", "types")

    def __init__(self, name: bytes, pgq: PostgresQuery) -> None:
        self.name = name
        self.query = pgq.query
        self.params = pgq.params
        self.formats = pgq.formats
        self.types = pgq.types


class Direct:
    """A lane connection's direct statements (see the module's contract)."""

    __slots__ = ("_bound", "_conn", "_prepared", "_sent", "_tx")

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._tx = Transformer(conn)
        self._bound: dict[tuple[Any, ...], _Bound] = {}
        self._prepared: set[bytes] = set()
        self._sent: _Bound | None = None

    async def fetch(
        self, name: str, query: sql.SQL, params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Run ``query`` (named ``name``, with ``%(key)s`` placeholders) with ``params``; its
        rows as tuples in the statement's column order (empty when it returns none)."""
        bound = self._bound_for(name, query, params)
        if bound.name not in self._prepared:
            await self._prepare(bound)
        self._send(bound)
        return await self.receive()

    def send_now(self, name: str, params: dict[str, Any]) -> bool:
        """Send what :meth:`fetch` would, without waiting (from a callback), and say so; await
        :meth:`receive` next for its rows. False (nothing sent) when the statement is not yet
        prepared on this connection with these parameters: call :meth:`fetch` instead. A
        connection that cannot take it raises here, as :meth:`fetch` would."""
        bound = self._bound.get(_key(name, params))
        if bound is None or bound.name not in self._prepared:
            return False
        self._send(bound)
        return True

    async def receive(self) -> list[tuple[Any, ...]]:
        """The rows of the statement just sent."""
        try:
            result = await self._answer()
        except psycopg.errors.InvalidSqlStatementName:
            bound = self._sent
            assert bound is not None  # noqa: S101 - set by every send
            self._prepared.discard(bound.name)  # deallocated behind our back: once more
            await self._prepare(bound)
            self._send(bound)
            result = await self._answer()
        if not result.ntuples:
            return []
        tx = self._tx
        tx.set_pgresult(result)
        return tx.load_rows(0, result.ntuples, tuple)

    def _bound_for(self, name: str, query: sql.SQL, params: dict[str, Any]) -> _Bound:
        key = _key(name, params)
        bound = self._bound.get(key)
        return self._bind(query, params, key) if bound is None else bound

    def _bind(self, query: sql.SQL, params: dict[str, Any], key: tuple[Any, ...]) -> _Bound:
        pgq = PostgresQuery(self._tx)
        pgq.convert(query, params)
        # a digest wide enough that two statements never share a name on one connection
        digest = hashlib.blake2b(pgq.query + repr(pgq.types).encode(), digest_size=16)
        bound = _Bound(f"workfleet_{digest.hexdigest()}".encode(), pgq)
        if len(self._bound) >= BOUND_SETS:
            self._bound.clear()
        self._bound[key] = bound
        return bound

    async def _prepare(self, bound: _Bound) -> None:
        self._conn.pgconn.send_prepare(bound.name, bound.query, bound.types)
        try:
            await self._answer()
        except psycopg.Error as exc:
            if exc.sqlstate != _DUPLICATE:
                raise
        self._prepared.add(bound.name)

    def _send(self, bound: _Bound) -> None:
        self._conn.pgconn.send_query_prepared(bound.name, bound.params, bound.formats)
        self._sent = bound

    async def _answer(self) -> pq.abc.PGresult:
        """The result of what was just sent; the connection closed if it cannot say."""
        pgconn = self._conn.pgconn
        try:
            # a claim is a few hundred bytes: it nearly always goes out in the first write
            while pgconn.flush():
                await _ready(pgconn, writing=True)
            if pgconn.is_busy():
                await _ready(pgconn, writing=False)
        except BaseException:
            # the statement may still be on the wire: nothing can use this connection again
            pgconn.finish()
            raise
        result = pgconn.get_result()
        while pgconn.get_result() is not None:
            pass
        if result is None:
            raise psycopg.OperationalError("the server sent no result")
        if result.status not in _OK:
            raise psycopg.errors.error_from_result(result, encoding=self._conn.info.encoding)
        return result


async def _ready(pgconn: pq.abc.PGconn, *, writing: bool) -> None:
    """Wait until ``pgconn`` can write, or has read a whole result (consuming input as it
    comes, in the socket's callback: no task and no generator in between)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    fd = pgconn.socket

    def on_event() -> None:
        if done.done():
            return
        if writing:
            done.set_result(None)
            return
        try:
            pgconn.consume_input()
        except psycopg.Error as exc:
            done.set_exception(exc)
            return
        if not pgconn.is_busy():
            done.set_result(None)

    if writing:
        loop.add_writer(fd, on_event)
    else:
        loop.add_reader(fd, on_event)
    try:
        await done
    finally:
        if writing:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


def _key(name: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """What a bound statement is remembered by: its name, and ``params``' values with their
    types (``1``, ``1.0`` and ``True`` are equal keys but dump differently), lists as tuples."""
    return (name, *((type(v), tuple(v) if isinstance(v, list) else v) for v in params.values()))
