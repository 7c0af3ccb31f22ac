"""Scenario 2: the database restarts mid-drain; workers reconnect, nothing is lost, and new
runs are picked up at NOTIFY speed again (the listener re-LISTENed), not at poll speed."""

from __future__ import annotations

import functools
import statistics
from pathlib import Path

import psycopg
import pytest

from tests.chaos import db
from tests.chaos.invariants import check
from tests.chaos.private_pg import private_server
from tests.chaos.procs import WorkerProcess, worker_env
from tests.waiting import eventually
from workfleet.db.migrate import migrate

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

SCHEMA = "chaos_restart"
PASSWORD = "Restart-Pw-51c0"  # trust authentication ignores it; the logs must not show it
POLL_INTERVAL = 10.0  # so slow that a poll-driven pickup cannot pass for a notified one
RUNS = 3000


@pytest.mark.timeout(240)
async def test_database_restart_mid_drain(tmp_path: Path) -> None:
    with private_server() as server:
        await migrate(server.dsn, SCHEMA)
        secret_dsn = psycopg.conninfo.make_conninfo(server.dsn, password=PASSWORD)
        fleet = [
            WorkerProcess(
                worker_env(
                    secret_dsn,
                    SCHEMA,
                    f"restart-{i}",
                    WORKFLEET_PREFIXES="chaos.a.%=8,chaos.b.%=8",
                    WORKFLEET_POLL_INTERVAL=str(POLL_INTERVAL),
                    WORKFLEET_LEASE_SECONDS="5",
                ),
                tmp_path,
            )
            for i in range(2)
        ]
        try:
            await eventually(lambda: _listening(server.dsn, len(fleet)), 20)
            before = await db.pickup_latencies(server.dsn, SCHEMA, "chaos.a.ping.v1", 5)

            payload = "jsonb_build_object('ms', 10 + g %% 40)"
            await db.insert_many(server.dsn, SCHEMA, "chaos.a.work.v1", RUNS // 2, payload, 10)
            await db.insert_many(server.dsn, SCHEMA, "chaos.b.work.v1", RUNS // 2, payload, 10)
            for fraction in (0.25, 0.6):
                await eventually(functools.partial(_done_at_least, server.dsn, fraction), 60, 0.05)
                server.restart(down_seconds=2.0)
            await eventually(lambda: _drained(server.dsn), 90, every=0.2)

            # back to NOTIFY speed: every listener reconnected and LISTENs again
            await eventually(lambda: _listening(server.dsn, len(fleet)), 30)
            after = await db.pickup_latencies(server.dsn, SCHEMA, "chaos.b.ping.v1", 10)
            for proc in fleet:
                assert proc.alive, proc.output[-3000:]
            codes = [proc.terminate(30) for proc in fleet]
            assert codes == [0, 0]
            logs = "\n".join(p.output for p in fleet)
        finally:
            for proc in fleet:
                proc.close()
        report = await check(server.dsn, SCHEMA, restarts=server.restarts)
    report.extra.update(
        pickup_before_ms=[round(x * 1000, 1) for x in before],
        pickup_after_restart_ms=[round(x * 1000, 1) for x in after],
        pickup_after_restart_median_ms=round(statistics.median(after) * 1000, 1),
        poll_interval_s=POLL_INTERVAL,
    )
    report.print("postgres restart")
    report.assert_ok()
    assert report.restarts == 2
    assert report.by_status == {"succeeded": RUNS + 15}
    assert "listener connection lost" in logs, "the restart never reached a listener"
    assert PASSWORD not in logs
    # polling would take ~10 s; a notification takes milliseconds
    assert max(after) < 1.0, after
    assert statistics.median(after) < 0.3, after


async def _listening(dsn: str, expected: int) -> bool:
    try:
        return await db.listeners(dsn) == expected
    except Exception:  # noqa: BLE001 - the server may be restarting
        return False


async def _done_at_least(dsn: str, fraction: float) -> bool:
    return await db.unfinished(dsn, SCHEMA) <= RUNS * (1 - fraction)


async def _drained(dsn: str) -> bool:
    return await db.unfinished(dsn, SCHEMA) == 0
