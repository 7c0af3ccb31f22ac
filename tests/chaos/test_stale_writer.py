"""Scenario 7: a worker frozen (SIGSTOP) past its lease; another reclaims and completes the
runs; the first resumes (SIGCONT) and its late writes change nothing."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.chaos import db
from tests.chaos.invariants import check
from tests.chaos.procs import WorkerProcess, worker_env
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

RUNS = 5
EXPECTED_EVENTS = ["created", "leased", "started", "retried", "leased", "started", "succeeded"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("first_sleep_ms", "late_write"),
    [
        # resumed before its executor finished: the overdue heartbeat finds the lease gone
        (6000, ("lease lost; stopping the run",)),
        # resumed after: the executor returns at once and its outcome write is fenced off; on
        # a loaded machine the overdue heartbeat's timer may fire first (fenced off too)
        (800, ("outcome not written: the lease was lost", "lease lost; stopping the run")),
    ],
    ids=["heartbeat-first", "outcome-first"],
)
async def test_frozen_worker_resumes_and_writes_nothing(
    pg_dsn: str, schema: str, tmp_path: Path, first_sleep_ms: int, late_write: tuple[str, ...]
) -> None:
    common = {
        "WORKFLEET_PREFIXES": "chaos.a.%=10",
        "WORKFLEET_LOG_LEVEL": "INFO",
        "WORKFLEET_HEARTBEAT_SECONDS": "1.9",
    }
    stale = WorkerProcess(worker_env(pg_dsn, schema, "stale", **common), tmp_path)
    fresh: WorkerProcess | None = None
    try:
        # the first attempt sleeps: the worker is frozen mid-run
        payload = f'\'{{"first_sleep_ms": {first_sleep_ms}, "ms": 1}}\''
        await db.insert_many(pg_dsn, schema, "chaos.a.work.v1", RUNS, payload, 3)
        await eventually(lambda: _leased_by(pg_dsn, schema, "stale", RUNS), 20)
        # leased in the table is not enough: frozen before it read the claim's reply, the
        # worker would start the runs only after resuming, and its overdue heartbeat would
        # always win the race against their outcome
        await eventually(lambda: stale.output.count("first attempt sleeping") == RUNS, 20)
        stale.signal(signal.SIGSTOP)
        # past the 2 s lease; the fresh worker's sweep reclaims, it runs attempt 2 at once
        fresh = WorkerProcess(worker_env(pg_dsn, schema, "fresh", **common), tmp_path)
        await eventually(lambda: _succeeded(pg_dsn, schema, RUNS), 30, every=0.1)
        stale.signal(signal.SIGCONT)
        # the resumed worker's overdue timers fire: heartbeat and/or outcome write, both fenced
        await eventually(lambda: _noticed(stale), 15)
        await asyncio.sleep(1.0)  # leave room for any late write to land (it must not)
        assert stale.terminate(30) == 0
        assert fresh.terminate(30) == 0
    finally:
        stale.close()
        if fresh is not None:
            fresh.close()
    report = await check(pg_dsn, schema)
    stale_log = stale.output
    report.extra.update(
        stale_outcomes_refused=stale_log.count("outcome not written: the lease was lost"),
        stale_heartbeats_refused=stale_log.count("lease lost; stopping the run"),
    )
    report.print(f"stale writer ({first_sleep_ms} ms first attempt)")
    report.assert_ok()
    assert report.by_status == {"succeeded": RUNS}
    trails = await db.rows(
        pg_dsn,
        schema,
        "SELECT r.id, r.attempt, r.result->>'worker', "
        "array_agg(e.event_type ORDER BY e.id), "
        "array_agg(e.data->>'worker_id' ORDER BY e.id) FILTER (WHERE e.event_type = 'leased') "
        "FROM workflow_run r JOIN workflow_event e ON e.workflow_id = r.id GROUP BY r.id",
    )
    for _run_id, attempt, worker, events, lessees in trails:
        assert events == EXPECTED_EVENTS, events
        assert lessees == ["stale", "fresh"]
        assert (attempt, worker) == (1, "fresh"), "the stale worker changed the row"
    assert any(w in stale_log for w in late_write), "the resumed worker took no fenced path"


async def _leased_by(dsn: str, schema: str, worker: str, count: int) -> bool:
    return await db.count(dsn, schema, "status = 'leased' AND leased_by = %s", worker) == count


async def _succeeded(dsn: str, schema: str, count: int) -> bool:
    return await db.count(dsn, schema, "status = 'succeeded'") == count


def _noticed(proc: WorkerProcess) -> bool:
    out = proc.output
    refused = out.count("outcome not written: the lease was lost")
    return refused + out.count("lease lost; stopping the run") >= RUNS
