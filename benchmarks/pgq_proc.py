"""The pgqueuer side of the suite. Runs inside its own virtualenv (pgqueuer + asyncpg only).

Set up as pgqueuer's README shows: tables installed by ``Queries.install()`` (what
``pgq install`` runs), an asyncpg connection wrapped in ``AsyncpgDriver``, a ``PgQueuer`` with
one entrypoint, ``PgQueuer.run`` (what ``pgq run`` calls) on uvloop. Its objects live in the
schema named by ``PGQUEUER_SCHEMA`` (pgqueuer's own setting).

Modes (the database comes as JSON keyword arguments for ``asyncpg.connect``):
    install   create pgqueuer's tables in the schema
    enqueue   W1: single ``Queries.enqueue`` calls in a loop, then batched ones; print JSON
    fill      enqueue N jobs in batches of 1,000
    produce   W3: one job every 1/rate s; record the wall-clock time each enqueue returned
    worker    ready / go / run until SIGTERM; JSON with executor start times to --out
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

ENTRYPOINT = "bench_noop"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("mode", choices=["install", "enqueue", "fill", "produce", "worker"])
    p.add_argument("--connect", required=True, help="JSON kwargs for asyncpg.connect")
    p.add_argument("--schema", required=True)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--single-runs", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--record-starts", action="store_true")
    p.add_argument("--out")
    return p.parse_args()


ARGS = _args()
os.environ["PGQUEUER_SCHEMA"] = ARGS.schema  # read once by pgqueuer's settings

import asyncpg  # type: ignore[import-not-found,unused-ignore]  # noqa: E402 - after PGQUEUER_SCHEMA is set
import uvloop  # noqa: E402
from pgqueuer import PgQueuer  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from pgqueuer.db import AsyncpgDriver  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from pgqueuer.models import Job  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from pgqueuer.queries import Queries  # type: ignore[import-not-found,unused-ignore]  # noqa: E402


async def connect() -> Any:
    return await asyncpg.connect(**json.loads(ARGS.connect))


async def install() -> dict[str, Any]:
    conn = await connect()
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()
    return {}


async def enqueue() -> dict[str, Any]:
    conn = await connect()
    try:
        q = Queries(AsyncpgDriver(conn))
        t0 = time.perf_counter()
        for i in range(ARGS.single_runs):
            await q.enqueue(ENTRYPOINT, str(i).encode())
        single = ARGS.single_runs / (time.perf_counter() - t0)
        n = ARGS.batch
        batches = max(1, ARGS.runs // n)
        t0 = time.perf_counter()
        for b in range(batches):
            await q.enqueue([ENTRYPOINT] * n, [str(b * n + i).encode() for i in range(n)], [0] * n)
        batch = batches * n / (time.perf_counter() - t0)
    finally:
        await conn.close()
    return {"single": single, "batch": batch}


async def fill() -> dict[str, Any]:
    conn = await connect()
    try:
        q = Queries(AsyncpgDriver(conn))
        step = 1000
        for start in range(0, ARGS.runs, step):
            n = min(step, ARGS.runs - start)
            await q.enqueue([ENTRYPOINT] * n, [str(start + i).encode() for i in range(n)], [0] * n)
    finally:
        await conn.close()
    return {}


async def produce() -> dict[str, Any]:
    conn = await connect()
    commits: dict[int, float] = {}
    round_trips: list[float] = []
    try:
        q = Queries(AsyncpgDriver(conn))
        count = int(ARGS.rate * ARGS.seconds)
        t_start = time.monotonic()
        for i in range(count):
            delay = t_start + i / ARGS.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            before = time.time()
            await q.enqueue(ENTRYPOINT, str(i).encode())
            commits[i] = time.time()
            round_trips.append(commits[i] - before)
    finally:
        await conn.close()
    return {"commits": commits, "round_trips": round_trips}


async def worker() -> dict[str, Any]:
    conn = await connect()
    pgq = PgQueuer(AsyncpgDriver(conn))
    first: list[float] = []
    starts: dict[int, float] = {}
    record = ARGS.record_starts

    @pgq.entrypoint(ENTRYPOINT)  # type: ignore[untyped-decorator,unused-ignore]
    async def noop(job: Job) -> None:
        if not first:
            first.append(time.time())
        if record and job.payload is not None:
            starts[int(job.payload)] = time.time()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, pgq.shutdown.set)
    print("ready", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        return {"error": "no go"}
    cpu0 = time.process_time()
    await pgq.run(batch_size=ARGS.batch)
    return {
        "first_start": first[0] if first else None,
        "starts": starts,
        "cpu_seconds": time.process_time() - cpu0,
    }


def main() -> int:
    mode = {
        "install": install,
        "enqueue": enqueue,
        "fill": fill,
        "produce": produce,
        "worker": worker,
    }[ARGS.mode]
    result = uvloop.run(mode())
    text = json.dumps(result)
    if ARGS.out:
        with open(ARGS.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
