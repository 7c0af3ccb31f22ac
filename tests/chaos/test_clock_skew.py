"""Scenario 8: workers whose wall clocks are hours off behave exactly like the others, because
every time the runtime acts on (run_at, lease expiry, retry backoff) is the database's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.chaos import db
from tests.chaos.invariants import check
from tests.chaos.procs import WorkerProcess, worker_env
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

SKEWS = {"ahead": 3 * 3600.0, "behind": -3 * 3600.0}
LEASE = 2.0


@pytest.mark.timeout(120)
async def test_skewed_clocks_change_nothing(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    fleet = [
        WorkerProcess(
            worker_env(
                pg_dsn,
                schema,
                f"skew-{name}",
                WORKFLEET_PREFIXES="chaos.a.%=8,chaos.retry.%=4",
                WORKFLEET_LEASE_SECONDS=str(LEASE),
                WORKFLEET_LOG_LEVEL="INFO",
                CHAOS_CLOCK_SKEW_SECONDS=str(skew),
            ),
            tmp_path,
        )
        for name, skew in SKEWS.items()
    ]
    try:
        await eventually(lambda: all("worker started" in p.output for p in fleet), 20)
        # not before run_at: a worker trusting a clock 3 h ahead would start these at once
        await db.rows(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload, run_at) "
            "SELECT 'chaos.a.later.v1', '{\"ms\": 1}', now() + interval '2 seconds' "
            "FROM generate_series(1, 20)",
        )
        # retries 2 s later by the database clock
        await db.insert_many(pg_dsn, schema, "chaos.retry.v1", 10, "'{}'", 3)
        # runs longer than the lease: heartbeats must keep them (a clock 3 h behind would
        # let a naive sweep think every lease is fresh; 3 h ahead, that all are expired)
        await db.insert_many(pg_dsn, schema, "chaos.a.long.v1", 8, "'{\"ms\": 5000}'", 3)
        await eventually(lambda: _leases_sane(pg_dsn, schema), 20)
        await eventually(lambda: _all_done(pg_dsn, schema), 60, every=0.2)
        logs = {p.worker_id: p.output for p in fleet}
        assert [p.terminate(30) for p in fleet] == [0, 0]
    finally:
        for proc in fleet:
            proc.close()

    early = await db.scalar(
        pg_dsn,
        schema,
        "SELECT count(*) FROM workflow_run r JOIN workflow_event e ON e.workflow_id = r.id "
        "WHERE r.type = 'chaos.a.later.v1' AND e.event_type = 'started' "
        "AND e.created_at < r.run_at",
    )
    assert early == 0, "a run started before its run_at"
    gaps = await db.rows(
        pg_dsn,
        schema,
        "SELECT extract(epoch FROM s.created_at - f.created_at) FROM workflow_event f "
        "JOIN workflow_event s ON s.workflow_id = f.workflow_id AND s.event_type = 'started' "
        " AND s.id > f.id "
        "WHERE f.event_type = 'retried'",
    )
    assert len(gaps) == 10
    assert all(1.99 <= float(g) < 4.0 for (g,) in gaps), gaps
    expired = await db.scalar(
        pg_dsn,
        schema,
        "SELECT count(*) FROM workflow_event WHERE data->>'reason' = 'lease_expired'",
    )
    assert expired == 0, "a healthy lease was swept"
    # the skew was real: the workers' own log timestamps are hours off
    offsets = {wid: _log_offset_hours(out) for wid, out in logs.items()}
    assert round(offsets["skew-ahead"]) == 3 and round(offsets["skew-behind"]) == -3, offsets
    report = await check(pg_dsn, schema)
    report.extra.update(
        skew_hours={k: round(v, 2) for k, v in offsets.items()},
        retry_gaps_s=sorted(round(float(g), 2) for (g,) in gaps),
    )
    report.print("clock skew")
    report.assert_ok()
    assert report.by_status == {"succeeded": 38}
    workers = await db.rows(pg_dsn, schema, "SELECT DISTINCT result->>'worker' FROM workflow_run")
    assert sorted(w for (w,) in workers) == ["skew-ahead", "skew-behind"]


async def _leases_sane(dsn: str, schema: str) -> bool:
    """While the long runs execute, their leases end within LEASE seconds of the DB's now."""
    rows = await db.rows(
        dsn,
        schema,
        "SELECT extract(epoch FROM lease_until - now()) FROM workflow_run "
        "WHERE type = 'chaos.a.long.v1' AND status = 'leased'",
    )
    if len(rows) < 8:
        return False
    assert all(0 < float(r[0]) <= LEASE + 0.1 for r in rows), rows
    return True


async def _all_done(dsn: str, schema: str) -> bool:
    return await db.unfinished(dsn, schema) == 0


def _log_offset_hours(output: str) -> float:
    for line in output.splitlines():
        if '"worker started"' in line:
            stamp = datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00"))
            return (stamp - datetime.now(UTC)).total_seconds() / 3600
    raise AssertionError("no 'worker started' line")
