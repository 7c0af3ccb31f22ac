"""Scenario 5: executors that never stop. An async one swallows cancellation; a sync one blocks
its thread forever. Timeouts fire, outcomes are written, slots are accounted for, and the
worker still shuts down. What an operator sees is asserted (logs, metrics, probes)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.chaos import db
from tests.chaos.invariants import check
from tests.chaos.procs import WorkerProcess, free_port, http_get, worker_env
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

CONCURRENCY = 2


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def _stuck_worker(dsn: str, schema: str, tmp_path: Path, port: int) -> WorkerProcess:
    env = worker_env(
        dsn,
        schema,
        "stuck",
        WORKFLEET_PREFIXES=f"chaos.stuck.%={CONCURRENCY}",
        WORKFLEET_HTTP_ENABLED="true",
        WORKFLEET_HTTP_HOST="127.0.0.1",
        WORKFLEET_HTTP_PORT=str(port),
        WORKFLEET_LOG_LEVEL="INFO",
        WORKFLEET_DRAIN_TIMEOUT="2",
    )
    return WorkerProcess(env, tmp_path)


async def _wait_http(port: int) -> None:
    await eventually(lambda: _up(port) and http_get(port, "/readyz")[0] == 200, 20)


@pytest.mark.timeout(120)
async def test_async_executor_ignoring_cancellation(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    port = free_port()
    worker = _stuck_worker(pg_dsn, schema, tmp_path, port)
    try:
        await _wait_http(port)
        await db.insert_many(pg_dsn, schema, "chaos.stuck.async.v1", 3, "'{}'", 5)
        # timeout (1 s) -> cancel -> ignored -> after the grace the attempt fails anyway;
        # max_attempts=2 (the executor's) beats the row's 5
        await eventually(lambda: _count_is(pg_dsn, schema, "status = 'failed'", 3), 30)
        _, metrics = http_get(port, "/metrics")
        live = http_get(port, "/livez")
        log = worker.output
    finally:
        worker.close(force=True)
    errors = await db.rows(pg_dsn, schema, "SELECT DISTINCT last_error FROM workflow_run")
    assert errors == [("timed out after 1s",)]
    # 3 runs x 2 attempts with 2 slots: slots came back after every abandoned task
    assert _metric(metrics, "workfleet_runs_finished_total", outcome="timed_out") == 6
    assert _metric(metrics, "workfleet_runs_in_flight") == 0, "a slot was not given back"
    assert log.count('"event": "run timed_out"') == 6
    assert live[0] == 200
    report = await check(pg_dsn, schema)
    report.extra.update(livez=list(live))
    report.print("stuck async executor")
    report.assert_ok()


@pytest.mark.timeout(120)
async def test_worker_exits_despite_an_async_executor_ignoring_cancellation(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    port = free_port()
    worker = _stuck_worker(pg_dsn, schema, tmp_path, port)
    try:
        await _wait_http(port)
        await db.insert_many(pg_dsn, schema, "chaos.stuck.async.v1", 1, "'{}'", 5)
        await eventually(lambda: _count_is(pg_dsn, schema, "status = 'failed'", 1), 30)
        worker.signal(signal.SIGTERM)
        await eventually(lambda: "worker stopped" in worker.output, 15)
        try:
            code: int | None = worker.wait(8)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        worker.close(force=True)
    assert code == 0, "still running 8 s after 'worker stopped' (drain timeout 2 s)"


@pytest.mark.timeout(120)
async def test_sync_executor_blocking_forever(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    port = free_port()
    worker = _stuck_worker(pg_dsn, schema, tmp_path, port)
    rescuer: WorkerProcess | None = None
    try:
        await _wait_http(port)
        await db.insert_many(pg_dsn, schema, "chaos.stuck.sync.v1", CONCURRENCY, "'{}'", 5)
        # both attempts time out and are written (retry), but their threads never end: the
        # slots stay taken so the loop never runs more than CONCURRENCY executor threads
        await eventually(
            lambda: _count_is(pg_dsn, schema, "status = 'pending' AND attempt = 1", CONCURRENCY),
            30,
        )
        await asyncio.sleep(1.5)  # a poll or two: the wedged loop must not claim the retries
        assert await db.count(pg_dsn, schema, "status = 'leased'") == 0
        _, metrics = http_get(port, "/metrics")
        live = http_get(port, "/livez")
        log = worker.output
        t0 = time.monotonic()
        code = worker.terminate(30)
        stop_seconds = time.monotonic() - t0
        assert code == 0, worker.output[-3000:]
        assert await db.count(pg_dsn, schema, "status = 'pending' AND attempt = 1") == CONCURRENCY

        # another worker takes the retries; they time out on their last attempt and fail
        rescuer = _stuck_worker(pg_dsn, schema, tmp_path, free_port())
        await eventually(lambda: _count_is(pg_dsn, schema, "status = 'failed'", CONCURRENCY), 30)
        assert rescuer.terminate(30) == 0
    finally:
        worker.close(force=True)
        if rescuer is not None:
            rescuer.close(force=True)
    assert _metric(metrics, "workfleet_runs_finished_total", outcome="timed_out") == CONCURRENCY
    assert _metric(metrics, "workfleet_runs_in_flight") == CONCURRENCY, "stuck threads hold slots"
    assert log.count("executor thread still running after its outcome") == CONCURRENCY
    assert stop_seconds < 10
    report = await check(pg_dsn, schema)
    report.extra.update(livez=list(live), stop_seconds=round(stop_seconds, 2))
    report.print("stuck sync executor")
    report.assert_ok()
    assert report.by_status == {"failed": CONCURRENCY}


@pytest.mark.timeout(120)
async def test_livez_reports_a_loop_wedged_by_stuck_threads(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    port = free_port()
    worker = _stuck_worker(pg_dsn, schema, tmp_path, port)
    try:
        await _wait_http(port)
        await db.insert_many(pg_dsn, schema, "chaos.stuck.sync.v1", CONCURRENCY, "'{}'", 5)
        await eventually(
            lambda: _count_is(pg_dsn, schema, "status = 'pending' AND attempt = 1", CONCURRENCY),
            30,
        )
        await asyncio.sleep(3)
        status, body = http_get(port, "/livez")
    finally:
        worker.close(force=True)
    assert status == 503, f"/livez answered {status} {body.strip()!r} for a wedged loop"


async def _count_is(dsn: str, schema: str, where: str, expected: int) -> bool:
    return await db.count(dsn, schema, where) == expected


def _up(port: int) -> bool:
    try:
        http_get(port, "/startupz")
    except OSError:
        return False
    return True


async def _status(dsn: str, schema: str, status: str) -> bool:
    return await db.count(dsn, schema, "status = %s", status) > 0
