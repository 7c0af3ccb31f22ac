"""The API's benchmark: ``python -m benchmarks.api [--runs N] [--database-url URL]``.

Seeds a fresh schema with ``--runs`` runs (default 1,000,000: ten type families, mostly
finished, payloads with a customer id, created over 30 days), starts one ``workfleet api``
process on it, and prints latency percentiles of ``GET /api/v1/workflows`` (first page, a
filtered page, a payload search, a deep cursor page), of the console's runs page, and the
requests per second of ``POST /api/v1/workflows`` from concurrent clients. The load comes from
this process, on the same machine as the API and PostgreSQL: the figures include that share.
The schema is dropped afterwards. Prints numbers; it is not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from benchmarks.common import (
    conninfo_of,
    database_url,
    dropped_afterwards,
    new_schema_name,
    percentile,
)
from workfleet.api.auth import digest

KEY = "bench-admin-key"
WORKFLEET = str(Path(sys.executable).with_name("workfleet"))

SEED = """
INSERT INTO workflow_run (type, payload, status, priority, run_at, attempt, max_attempts,
                          last_error, created_at, updated_at)
SELECT 'fam' || (i %% 10) || '.job' || (i %% 5) || '.v1',
       jsonb_build_object('customer', 'c' || (i %% 5000), 'n', i),
       CASE WHEN i %% 100 = 0 THEN 'failed' WHEN i %% 20 = 0 THEN 'pending'
            WHEN i %% 50 = 1 THEN 'cancelled' ELSE 'succeeded' END,
       100, t, CASE WHEN i %% 100 = 0 THEN 3 ELSE 0 END, 3,
       CASE WHEN i %% 100 = 0 THEN 'GatewayTimeout: upstream took 30s' END,
       t, t
FROM (SELECT i, now() - make_interval(secs => (%(n)s - i) * 2592000.0 / %(n)s) AS t
      FROM generate_series(1, %(n)s) AS i) s
"""


# The index keyset pages want (newest first, across every type), shipped by migration 0007;
# --indexes creates it on a schema migrated before it, to compare.
NEWEST_INDEX = """
CREATE INDEX IF NOT EXISTS workfleet_run_newest_idx
    ON workflow_run (created_at DESC, id DESC) WHERE deleted_at IS NULL
"""


def seed(conninfo: str, schema: str, runs: int) -> float:
    start = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        # bulk seeding skips the per-row triggers (audit events, wake-ups): no worker listens,
        # and the pages measured here read runs, not events
        conn.execute("SET session_replication_role = replica")
        conn.execute(SEED.encode(), {"n": runs})
        conn.execute("SET session_replication_role = DEFAULT")
        # the families /stats and the console's overview show (a worker registers its types)
        conn.execute(
            "INSERT INTO workflow_registry (workflow_name, runtime)"
            " SELECT 'fam' || i || '.job0.v1', 'python' FROM generate_series(0, 9) AS i"
        )
        conn.execute("ANALYZE workflow_run")
    return time.perf_counter() - start


def timed_gets(client: httpx.Client, path: str, n: int) -> list[float]:
    client.get(path).raise_for_status()  # warm
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return times


async def post_rate(url: str, total: int, concurrency: int) -> float:
    body = {"type": "fam0.job0.v1", "payload": {"customer": "c1", "amount": 10}}
    headers = {"X-API-Key": KEY}
    done = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal done
        while done < total:
            done += 1
            response = await client.post("/api/v1/workflows", json=body, headers=headers)
            response.raise_for_status()

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        return total / (time.perf_counter() - start)


def measure_pages(base: str, requests: int) -> None:
    """Print p50/p99 of each measured page (the payload search gets a tenth of the requests)."""
    with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client:
        deep = client.get("/api/v1/workflows?limit=50").json()
        cursor = deep["next_cursor"]
        for _ in range(20):  # twenty pages in: a cursor as deep as a user goes
            cursor = client.get(f"/api/v1/workflows?limit=50&cursor={cursor}").json()["next_cursor"]
        pages = {
            "GET /workflows first page": "/api/v1/workflows?limit=50",
            "GET /workflows ?type=&status=failed": (
                "/api/v1/workflows?type=fam3.job3.v1&status=failed&limit=50"
            ),
            "GET /workflows ?prefix=fam7.": "/api/v1/workflows?prefix=fam7.&limit=50",
            "GET /workflows ?payload=customer": (
                '/api/v1/workflows?payload={"customer":"c42"}&limit=50'
            ),
            "GET /workflows page 21 (cursor)": (f"/api/v1/workflows?limit=50&cursor={cursor}"),
            "GET /stats (all families)": "/api/v1/stats",
        }
        login = client.post("/ui/login", data={"key": KEY}, follow_redirects=False)
        if login.status_code != 303:
            raise SystemExit(f"console sign-in failed: {login.status_code}")
        pages["console /ui/runs"] = "/ui/runs"
        pages["console /ui/runs ?type=fam0.%&status=failed"] = (
            "/ui/runs?type=fam0.%25&status=failed"
        )
        # a prefix with no failed run: the capped count and the page read every row (see docs)
        pages["console /ui/runs ?type=fam3.%&status=failed (none)"] = (
            "/ui/runs?type=fam3.%25&status=failed"
        )
        print(f"\n{'page':48} {'p50 ms':>8} {'p99 ms':>8}   (n={requests})")
        for name, path in pages.items():
            n = requests if "payload" not in name else max(20, requests // 10)
            times = timed_gets(client, path, n)
            print(f"{name:48} {percentile(times, 50):8.1f} {percentile(times, 99):8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="GETs per measured page")
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url")
    parser.add_argument(
        "--indexes",
        action="store_true",
        help="also create the index the pages want: (created_at DESC, id DESC), not deleted",
    )
    args = parser.parse_args(argv)
    # a stopped benchmark still drops its schema and stops its API process
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    url = database_url(args.database_url)
    conninfo = conninfo_of(url)
    schema = new_schema_name("api")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLEET_")}
    env.update(
        {
            "WORKFLEET_DATABASE_URL": url,
            "WORKFLEET_SCHEMA": schema,
            "WORKFLEET_LOG_LEVEL": "WARNING",
            "WORKFLEET_API__HOST": "127.0.0.1",
            "WORKFLEET_API__PORT": "18080",
            "WORKFLEET_API__KEYS": f"bench:admin:{digest(KEY)}",
        }
    )
    with dropped_afterwards(conninfo, schema):
        subprocess.run([WORKFLEET, "migrate"], env=env, check=True, capture_output=True)
        print(f"seeding {args.runs:,} runs ...", flush=True)
        print(f"  seeded in {seed(conninfo, schema, args.runs):.1f}s", flush=True)
        if args.indexes:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                conn.execute(NEWEST_INDEX)
            print("  with the index on (created_at DESC, id DESC)", flush=True)
        server = subprocess.Popen([WORKFLEET, "api"], env=env)
        try:
            base = "http://127.0.0.1:18080"
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            measure_pages(base, args.requests)
            rate = asyncio.run(post_rate(base, args.posts, args.concurrency))
            print(
                f"\nPOST /workflows: {rate:,.0f} requests/s "
                f"(1 API process, {args.concurrency} concurrent clients, {args.posts:,} requests)"
            )
        finally:
            server.terminate()
            server.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
