"""Scenario 4: a run that kills its own worker process fails after max attempts; others are
unaffected."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.chaos import db
from tests.chaos.invariants import check
from tests.chaos.plugin import POISON_EXIT_CODE
from tests.chaos.procs import WorkerProcess, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

POISON = 3
MAX_ATTEMPTS = 3
NORMAL = 300


@pytest.mark.timeout(180)
async def test_poison_runs_fail_after_max_attempts(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    generation = 0

    def spawn(slot: int) -> WorkerProcess:
        nonlocal generation
        generation += 1
        env = worker_env(
            pg_dsn, schema, f"poison-{slot}-{generation}", WORKFLEET_PREFIXES="chaos.a.%=4"
        )
        return WorkerProcess(env, tmp_path)

    fleet = [spawn(0), spawn(1)]
    dead: list[WorkerProcess] = []
    try:
        poison = "'{\"poison\": true}'"
        await db.insert_many(pg_dsn, schema, "chaos.a.poison.v1", POISON, poison, MAX_ATTEMPTS)
        await db.insert_many(pg_dsn, schema, "chaos.a.work.v1", NORMAL, "'{\"ms\": 10}'", 10)
        deadline = time.monotonic() + 120
        while await db.unfinished(pg_dsn, schema) and time.monotonic() < deadline:
            for slot, proc in enumerate(fleet):
                if not proc.alive:
                    # a supervisor (Kubernetes) restarts the crashed worker
                    assert proc.wait(1) == POISON_EXIT_CODE, proc.output[-3000:]
                    dead.append(proc)
                    fleet[slot] = spawn(slot)
            await asyncio.sleep(0.1)
        assert await db.unfinished(pg_dsn, schema) == 0
        assert [proc.terminate(30) for proc in fleet] == [0, 0]
    finally:
        for proc in fleet + dead:
            proc.close()
    report = await check(pg_dsn, schema, kills=len(dead))
    poisoned = await db.rows(
        pg_dsn,
        schema,
        "SELECT attempt, last_error, "
        " (SELECT count(*) FROM workflow_event e"
        "  WHERE e.workflow_id = r.id AND e.event_type = 'started') "
        "FROM workflow_run r WHERE type = 'chaos.a.poison.v1' AND status = 'failed'",
    )
    report.extra.update(crashed_workers=len(dead), poison_last_error=poisoned[0][1])
    report.print("poison runs")
    report.assert_ok()
    assert report.by_status == {"succeeded": NORMAL, "failed": POISON}
    assert len(poisoned) == POISON
    for attempt, error, started in poisoned:
        assert attempt == 3 and started == 3
        assert error.startswith("lease expired: worker poison-")
        assert error.endswith("stopped heartbeating (attempt 3 of 3)")
    # every attempt of a poison run crashed a worker (poison runs in one process share a crash)
    assert MAX_ATTEMPTS <= len(dead) <= POISON * MAX_ATTEMPTS
