"""Scenario 3: pg_terminate_backend of the listener and of pool connections, over and over,
while two worker processes drain runs."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import psycopg
import pytest

from tests.chaos import db
from tests.chaos.invariants import check
from tests.chaos.procs import WorkerProcess, worker_env
from tests.waiting import eventually
from workfleet.db.listener import LISTENER_APPLICATION_NAME

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

PASSWORD = "Chaos-Pw-9f2b"

RUNS = 3000
POOL_APPLICATION_NAME = "workfleet"  # open_pool() names every pooled connection so

_TERMINATE = (
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM ("
    " SELECT pid FROM pg_stat_activity"
    " WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()"
    " ORDER BY random() LIMIT %s) victims"
)


@pytest.mark.timeout(180)
async def test_connections_killed_under_load(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    rng = random.Random(20261123)  # noqa: S311 - a reproducible kill schedule
    # trust authentication ignores it, but every error path must keep it out of the logs
    secret_dsn = psycopg.conninfo.make_conninfo(pg_dsn, password=PASSWORD)
    fleet = [
        WorkerProcess(
            worker_env(
                secret_dsn,
                schema,
                f"connkill-{i}",
                WORKFLEET_PREFIXES="chaos.a.%=8,chaos.b.%=8",
                WORKFLEET_POLL_INTERVAL="10",
                WORKFLEET_LEASE_SECONDS="5",
            ),
            tmp_path,
        )
        for i in range(2)
    ]
    listener_kills = pool_kills = 0
    try:
        await eventually(lambda: _listening(pg_dsn, 2), 20)
        payload = "jsonb_build_object('ms', 30 + g %% 60)"
        await db.insert_many(pg_dsn, schema, "chaos.a.work.v1", RUNS // 2, payload, 10)
        await db.insert_many(pg_dsn, schema, "chaos.b.work.v1", RUNS // 2, payload, 10)
        deadline = time.monotonic() + 120
        while await db.unfinished(pg_dsn, schema) and time.monotonic() < deadline:
            # the listener of one worker, and one or two pooled connections
            listener_kills += await db.scalar(
                pg_dsn, schema, _TERMINATE, LISTENER_APPLICATION_NAME, 1
            )
            pool_kills += await db.scalar(
                pg_dsn, schema, _TERMINATE, POOL_APPLICATION_NAME, rng.randint(1, 2)
            )
            await asyncio.sleep(rng.uniform(0.2, 0.6))
        assert await db.unfinished(pg_dsn, schema) == 0, "the fleet did not drain in time"
        # every listener is back, and notifications flow again (polling is at 10 s)
        await eventually(lambda: _listening(pg_dsn, 2), 30)
        after = await db.pickup_latencies(pg_dsn, schema, "chaos.b.ping.v1", 5)
        for proc in fleet:
            assert proc.alive, proc.output[-3000:]
        assert [proc.terminate(30) for proc in fleet] == [0, 0]
        logs = "\n".join(p.output for p in fleet)
    finally:
        for proc in fleet:
            proc.close()
    report = await check(pg_dsn, schema, connection_kills=listener_kills + pool_kills)
    report.extra.update(
        listener_kills=listener_kills,
        pool_kills=pool_kills,
        pickup_after_kills_ms=[round(x * 1000, 1) for x in after],
    )
    report.print("connection kills")
    report.assert_ok()
    assert report.by_status == {"succeeded": RUNS + 5}
    assert listener_kills >= 3 and pool_kills >= 3, "too few kills to prove anything"
    assert max(after) < 1.0, after
    assert "listener connection lost" in logs and "claim failed" in logs, "no error path taken"
    assert PASSWORD not in logs


async def _listening(dsn: str, expected: int) -> bool:
    return await db.listeners(dsn) == expected
