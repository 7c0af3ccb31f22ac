"""Scenario 6: SIGTERM under load drains or releases, exits 0, loses nothing; a second SIGTERM
cuts the drain short."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.chaos import db
from tests.chaos.invariants import check
from tests.chaos.procs import WorkerProcess, worker_env
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

DRAIN = 3.0
CANCEL_GRACE = 0.5


async def _in_flight(dsn: str, schema: str, count: int) -> bool:
    return await db.count(dsn, schema, "status = 'leased'") >= count


async def _released(dsn: str, schema: str) -> int:
    value = await db.scalar(
        dsn,
        schema,
        "SELECT count(*) FROM workflow_event WHERE event_type = 'retried' "
        "AND data->>'reason' = 'released'",
    )
    return int(value)


@pytest.mark.timeout(120)
async def test_sigterm_under_load_drains_or_releases(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    settings = {
        "WORKFLEET_PREFIXES": "chaos.a.%=10",
        "WORKFLEET_DRAIN_TIMEOUT": str(DRAIN),
        "WORKFLEET_CANCEL_GRACE": str(CANCEL_GRACE),
        "WORKFLEET_LOG_LEVEL": "INFO",
    }
    first = WorkerProcess(worker_env(pg_dsn, schema, "term-1", **settings), tmp_path)
    try:
        # 0.3 s .. 8 s: some finish within the drain, the rest must be released
        payload = "jsonb_build_object('ms', 300 + (g * 37 %% 30) * 260)"
        await db.insert_many(pg_dsn, schema, "chaos.a.work.v1", 60, payload, 3)
        await eventually(lambda: _in_flight(pg_dsn, schema, 10), 20)
        t0 = time.monotonic()
        code = first.terminate(DRAIN + 15)
        stop_seconds = time.monotonic() - t0
        assert code == 0, first.output[-3000:]
    finally:
        first.close()
    assert stop_seconds < DRAIN + CANCEL_GRACE + 3, stop_seconds
    leased = await db.count(pg_dsn, schema, "status = 'leased'")
    assert leased == 0, "a run was left leased by a worker that exited cleanly"
    released = await _released(pg_dsn, schema)
    assert released > 0, "nothing was still running at the drain timeout: scenario too easy"
    assert "drain timeout reached; cancelling and releasing runs" in first.output

    second = WorkerProcess(
        worker_env(pg_dsn, schema, "term-2", WORKFLEET_PREFIXES="chaos.a.%=20"), tmp_path
    )
    try:
        await eventually(lambda: _all_done(pg_dsn, schema), 60, every=0.2)
        assert second.terminate(30) == 0
    finally:
        second.close()
    report = await check(pg_dsn, schema)
    consumed = await db.count(pg_dsn, schema, "attempt > 0")
    report.extra.update(
        sigterm_exit_seconds=round(stop_seconds, 2), released=released, attempts_consumed=consumed
    )
    report.print("sigterm under load")
    report.assert_ok()
    assert report.by_status == {"succeeded": 60}
    assert consumed == 0, "a release must not consume an attempt"


async def _all_done(dsn: str, schema: str) -> bool:
    return await db.unfinished(dsn, schema) == 0


@pytest.mark.timeout(120)
async def test_second_sigterm_forces_a_fast_exit(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    env = worker_env(
        pg_dsn,
        schema,
        "term-fast",
        WORKFLEET_PREFIXES="chaos.a.%=5",
        WORKFLEET_DRAIN_TIMEOUT="60",
        WORKFLEET_LOG_LEVEL="INFO",
    )
    worker = WorkerProcess(env, tmp_path)
    try:
        await db.insert_many(pg_dsn, schema, "chaos.a.work.v1", 5, "'{\"ms\": 30000}'", 3)
        await eventually(lambda: _in_flight(pg_dsn, schema, 5), 20)
        t0 = time.monotonic()
        worker.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert worker.alive, "the first SIGTERM must start a drain, not exit"
        code = worker.terminate(10)
        stop_seconds = time.monotonic() - t0
    finally:
        worker.close()
    assert code == 0, worker.output[-3000:]
    assert stop_seconds < 5, f"second SIGTERM took {stop_seconds:.1f}s (drain timeout is 60 s)"
    assert "second stop signal: cancelling runs now" in worker.output
    state = await db.rows(pg_dsn, schema, "SELECT status, attempt FROM workflow_run")
    assert state == [("pending", 0)] * 5, "cut-short runs go back to pending, attempt kept"
    print(f"\nCHAOS second sigterm: exit 0 after {stop_seconds:.2f}s, 5 runs released")


async def test_a_sigterm_while_the_worker_starts_is_a_graceful_stop(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    """A SIGTERM while plugins load (here: a slow start) is held and acted on once the
    worker's handlers are in place: exit 0, as for any graceful stop, not death by signal."""
    env = worker_env(pg_dsn, schema, "early-stop", CHAOS_START_DELAY_SECONDS="3")
    proc = WorkerProcess(env, tmp_path)
    try:
        await asyncio.sleep(1.5)  # started and holding, still "loading"
        assert proc.alive
        proc.signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, proc.output[-2000:]
        assert "exit=0" in proc.output
    finally:
        proc.close()
