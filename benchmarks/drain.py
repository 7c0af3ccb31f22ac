"""Drain benchmark: insert N no-op runs by SQL, drain them with one worker, print the numbers.

Phase 1 (throughput): N runs inserted in one statement, then one worker drains them; prints
runs/s. Phase 2 (latency): runs inserted one at a time while the worker idles; prints
enqueue→start latency percentiles, measured on the database clock (``created_at`` of the run to
the ``started`` event), so NOTIFY wake-up, claim and dispatch are all included.

Usage: python benchmarks/drain.py [--runs 20000] [--concurrency 50] [--latency-runs 300]
Database: --database-url, else $WORKFLEET_DATABASE_URL / $DATABASE_URL, else an embedded
pgserver under .workfleet/bench-pg. A fresh schema is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql

from workfleet import Plugin
from workfleet.db.migrate import migrate
from workfleet.observability.logging import configure_logging
from workfleet.plugins import Discovery, ExecutorRegistry
from workfleet.runtime.observer import RecordingObserver
from workfleet.runtime.worker import Worker
from workfleet.settings import load_settings

noop = Plugin("bench")


@noop.executor("bench.noop.v1")
async def noop_executor(run: Any) -> None:
    return None


def database_url(given: str | None) -> str:
    url = given or os.environ.get("WORKFLEET_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    import pgserver

    return str(pgserver.get_server(os.path.abspath(".workfleet/bench-pg")).get_uri())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def count_done(conn: psycopg.AsyncConnection[Any], schema: str) -> int:
    cur = await conn.execute(
        sql.SQL("SELECT count(*) FROM {}.workflow_run WHERE status = 'succeeded'").format(
            sql.Identifier(schema)
        )
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-runs", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    configure_logging("console", "WARNING")
    url = database_url(args.database_url)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        database_url=url,
        db_schema=schema,
        prefixes=[f"bench.%={args.concurrency}"],
        http_enabled=False,
        schedules_enabled=False,
        poll_interval=2.0,
    )
    conninfo = settings.resolved_dsn().conninfo
    await migrate(conninfo, schema)
    discovery = Discovery([], [noop], ExecutorRegistry.from_plugins([noop]), [])
    table = sql.SQL("{}.workflow_run").format(sql.Identifier(schema))
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        try:
            t0 = time.perf_counter()
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (type, payload) SELECT 'bench.noop.v1', "
                    "jsonb_build_object('n', g) FROM generate_series(1, %s) g"
                ).format(table),
                [args.runs],
            )
            print(f"inserted {args.runs} runs in {time.perf_counter() - t0:.2f}s")

            observer = RecordingObserver()
            worker = Worker(settings, discovery, observer=observer)
            task = asyncio.create_task(worker.run())
            t0 = time.perf_counter()
            while await count_done(conn, schema) < args.runs:
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - t0
            print(
                f"drained {args.runs} runs in {elapsed:.2f}s: "
                f"{args.runs / elapsed:,.0f} runs/s (concurrency {args.concurrency})"
            )

            for _ in range(args.latency_runs):
                await conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (type, payload) VALUES ('bench.noop.v1', '{{}}')"
                    ).format(table)
                )
                await asyncio.sleep(0.01)
            while await count_done(conn, schema) < args.runs + args.latency_runs:
                await asyncio.sleep(0.05)
            cur = await conn.execute(
                sql.SQL(
                    "SELECT extract(epoch FROM e.created_at - r.created_at) FROM {} r "
                    "JOIN {}.workflow_event e ON e.workflow_id = r.id AND e.event_type = 'started' "
                    "ORDER BY r.created_at DESC LIMIT %s"
                ).format(table, sql.Identifier(schema)),
                [args.latency_runs],
            )
            lat = [float(r[0]) * 1000 for r in await cur.fetchall()]
            print(
                f"enqueue->start latency over {len(lat)} single inserts: "
                f"p50 {percentile(lat, 50):.1f} ms, p95 {percentile(lat, 95):.1f} ms, "
                f"p99 {percentile(lat, 99):.1f} ms, mean {statistics.mean(lat):.1f} ms"
            )
            worker.request_stop()
            await task
        finally:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    asyncio.run(main())
