"""W3 bare pickup: a framework-free LISTEN and claim loop on workfleet's own schema.

The floor under the runtime's pickup latency on this machine: one psycopg connection (no
pool, no executor) listens on the schema's channel, and on each notification runs the
runtime's own hot claim (``claim_ready`` from ``src/workfleet/db/sql/runs.sql``: the same
rows, events and asynchronous commit) and records, for every run it returns, the wall-clock
time the row arrived. The claimed runs are completed afterwards, off the measured path. It
stops on SIGTERM and writes ``{"starts": {seq: time}}`` to ``--out``.

Three forms: blocking psycopg (the default); with ``--async`` the same loop on asyncio and
uvloop, as the runtime is built, reading notifications in the socket's reader callback as the
runtime's listener does (the difference between them is what the event loop costs a pickup);
and with ``--direct`` the leanest form found, on asyncio with libpq used directly, the claim
sent and its rows read in the socket's callback.

Protocol as ``benchmarks.worker_proc``: ``ready``, wait for ``go``, JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import uvloop
from psycopg import pq
from psycopg._queries import PostgresQuery  # the query conversion psycopg's cursors use
from psycopg.adapt import Transformer

from workfleet.db.notifications import channel_name
from workfleet.db.queries import Queries

COMPLETE = """
UPDATE {schema}.workflow_run r
SET status = 'succeeded', result = 'null'::jsonb, leased_by = NULL, lease_until = NULL,
    updated_at = now()
WHERE r.id = ANY(%(ids)s::uuid[]) AND r.status = 'leased' AND r.leased_by = %(me)s
"""


def statements(schema: str) -> tuple[str, Queries, psycopg.sql.Composed, dict[str, Any]]:
    """What every form uses: the worker id, the queries, the completion and the claim's
    parameters."""
    me = f"pickup-{socket.gethostname()}"
    params = {
        "exact": [],
        "likes": ["bench.%"],
        "limit": 10,
        "worker_id": me,
        "lease": 30.0,
        "lifecycle": True,
    }
    complete = psycopg.sql.SQL(COMPLETE).format(schema=psycopg.sql.Identifier(schema))
    return me, Queries(schema), complete, params


def listen(conninfo: str, schema: str) -> dict[str, Any]:
    me, q, complete, params = statements(schema)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    starts: dict[str, float] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel_name(schema)))
        )
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return {"error": "no go"}
        while not stopping:
            woke = False
            for _ in conn.notifies(timeout=0.2, stop_after=1):
                woke = True
            if not woke:
                continue
            while True:  # claim until nothing is left (a burst needs more than one claim)
                rows = conn.execute(q["claim_ready"], params, prepare=True).fetchall()
                arrived = time.time()
                if not rows:
                    break
                for row in rows:
                    starts[str(json.loads(row[2])["seq"])] = arrived
                conn.execute(complete, {"ids": [row[0] for row in rows], "me": me})
    return {"starts": starts}


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@asynccontextmanager
async def _listening(
    conninfo: str, schema: str
) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], asyncio.Future[None]]]:
    """The asyncio forms' connection, listening on the schema's channel, and a future that
    SIGTERM resolves."""
    loop = asyncio.get_running_loop()
    stopping = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, _resolve, stopping)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(
            psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel_name(schema)))
        )
        yield conn, stopping


async def _ready_to_go() -> bool:
    """Say ``ready``; whether the parent then says ``go``."""
    print("ready", flush=True)
    line: str = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip() == "go"


async def listen_async(conninfo: str, schema: str) -> dict[str, Any]:
    me, q, complete, params = statements(schema)
    loop = asyncio.get_running_loop()
    starts: dict[str, float] = {}
    async with _listening(conninfo, schema) as (conn, stopping):
        if not await _ready_to_go():
            return {"error": "no go"}
        pgconn, fd = conn.pgconn, conn.pgconn.socket
        woke = False

        def notified(*_: object) -> None:  # a notification during a claim
            nonlocal woke
            woke = True

        conn.add_notify_handler(notified)
        while not stopping.done():
            waiter = loop.create_future()

            def readable(w: asyncio.Future[None] = waiter) -> None:
                pgconn.consume_input()
                while pgconn.notifies() is not None:
                    _resolve(w)

            if not woke:
                loop.add_reader(fd, readable)
                timer = loop.call_later(0.2, _resolve, waiter)
                await asyncio.wait([waiter, stopping], return_when=asyncio.FIRST_COMPLETED)
                timer.cancel()
                loop.remove_reader(fd)
            woke = False
            while True:  # claim until nothing is left, as the blocking form does
                cur = await conn.execute(q["claim_ready"], params, prepare=True)
                rows = await cur.fetchall()
                arrived = time.time()
                if not rows:
                    break
                for row in rows:
                    starts[str(json.loads(row[2])["seq"])] = arrived
                await conn.execute(complete, {"ids": [row[0] for row in rows], "me": me})
    return {"starts": starts}


class _DirectClaimer:
    """The ``--direct`` form's connection, driven from its socket's reader callback: claim on a
    notification, complete what was claimed, claim again until a claim finds nothing."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str) -> None:
        self.me, q, self.complete, params = statements(schema)
        self.pgconn = conn.pgconn
        self.tx = Transformer(conn)
        self.claim = PostgresQuery(self.tx)
        self.claim.convert(q["claim_ready"], params)
        self.done = PostgresQuery(self.tx)
        self.state = "idle"  # or "claiming", "completing": what the connection is answering
        self.again = False  # a notification came while it was busy
        self.starts: dict[str, float] = {}

    def prepare(self) -> str | None:
        """Prepare the claim (blocking, before the measurement); an error message or None."""
        result = self.pgconn.prepare(b"pickup_claim", self.claim.query, self.claim.types)
        ok = result.status == pq.ExecStatus.COMMAND_OK
        return None if ok else (result.error_message or b"").decode()

    def send_claim(self) -> None:
        self.pgconn.send_query_prepared(b"pickup_claim", self.claim.params, self.claim.formats)
        self.state, self.again = "claiming", False

    def readable(self) -> None:
        pgconn = self.pgconn
        pgconn.consume_input()
        while pgconn.notifies() is not None:
            self.again = True
        if self.state == "idle":
            if self.again:
                self.send_claim()
            return
        if pgconn.is_busy():
            return
        result = pgconn.get_result()
        while pgconn.get_result() is not None:
            pass
        if self.state == "completing" or result is None:
            self.send_claim()  # claim until nothing is left, as the other forms do
            return
        self.tx.set_pgresult(result)
        rows = self.tx.load_rows(0, result.ntuples, tuple)
        arrived = time.time()
        if not rows:
            self.state = "idle"
            if self.again:  # committed after the empty claim looked
                self.send_claim()
            return
        for row in rows:
            self.starts[str(json.loads(row[2])["seq"])] = arrived
        self.done.convert(self.complete, {"ids": [row[0] for row in rows], "me": self.me})
        done = self.done
        pgconn.send_query_params(done.query, done.params, done.types, done.formats)
        self.state = "completing"


async def listen_direct(conninfo: str, schema: str) -> dict[str, Any]:
    """The leanest form found: asyncio + uvloop, one connection, and libpq used directly. The
    claim (prepared once, its parameters dumped once) is sent from the socket's reader callback
    the moment a notification is read, and its rows read in the same callback: no task, no
    future and no generator between the notification and the claimed row. The runtime claims
    the same way from its listener's callback (``workfleet.db.direct``), on a second
    connection."""
    loop = asyncio.get_running_loop()
    async with _listening(conninfo, schema) as (conn, stopping):
        claimer = _DirectClaimer(conn, schema)
        error = claimer.prepare()
        if error is not None:
            return {"error": error}
        if not await _ready_to_go():
            return {"error": "no go"}
        loop.add_reader(conn.pgconn.socket, claimer.readable)
        await stopping
        loop.remove_reader(conn.pgconn.socket)
    return {"starts": claimer.starts}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--conninfo", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--async", dest="use_async", action="store_true")
    p.add_argument("--direct", action="store_true", help="asyncio with libpq used directly")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.direct:
        result = uvloop.run(listen_direct(args.conninfo, args.schema))
    elif args.use_async:
        result = uvloop.run(listen_async(args.conninfo, args.schema))
    else:
        result = listen(args.conninfo, args.schema)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
