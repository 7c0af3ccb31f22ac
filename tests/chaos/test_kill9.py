"""Scenario 1: SIGKILL workers at random while a fleet drains thousands of runs."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from tests.chaos import db
from tests.chaos.invariants import check
from tests.chaos.procs import WorkerProcess, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

RUNS_PER_PREFIX = 2500
# three worker processes over two prefixes: one per prefix and one serving both
SLOTS = ["chaos.a.%=8", "chaos.b.%=8", "chaos.a.%=6,chaos.b.%=6"]


@pytest.mark.timeout(180)
async def test_sigkill_workers_while_draining(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "0")) or random.randrange(1, 1_000_000)  # noqa: S311
    rng = random.Random(seed)  # noqa: S311 - a reproducible kill schedule
    generation = 0

    def spawn(slot: int) -> WorkerProcess:
        nonlocal generation
        generation += 1
        env = worker_env(pg_dsn, schema, f"k9-{slot}-{generation}", WORKFLEET_PREFIXES=SLOTS[slot])
        return WorkerProcess(env, tmp_path)

    fleet = [spawn(slot) for slot in range(len(SLOTS))]
    retired: list[WorkerProcess] = []
    kills = 0
    try:
        # runs take 30-130 ms, so a killed worker always holds some of them
        payload = "jsonb_build_object('ms', 30 + (g * 7919) %% 100)"
        await db.insert_many(pg_dsn, schema, "chaos.a.work.v1", RUNS_PER_PREFIX, payload, 10)
        await db.insert_many(pg_dsn, schema, "chaos.b.work.v1", RUNS_PER_PREFIX, payload, 10)
        started = time.monotonic()
        deadline = started + 120
        while await db.unfinished(pg_dsn, schema) and time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.8, 2.0))
            for proc in fleet:
                assert proc.alive, f"{proc.worker_id} died on its own:\n{proc.output[-3000:]}"
            if not await db.unfinished(pg_dsn, schema):
                break
            slot = rng.randrange(len(fleet))
            victim = fleet[slot]
            victim.kill()
            kills += 1
            retired.append(victim)
            fleet[slot] = spawn(slot)
        drained_in = time.monotonic() - started
        assert await db.unfinished(pg_dsn, schema) == 0, "the fleet did not drain in time"
        codes = [proc.terminate(30) for proc in fleet]
        assert codes == [0] * len(fleet)
    finally:
        for proc in fleet + retired:
            proc.close()
    report = await check(pg_dsn, schema, kills=kills)
    report.extra.update(seed=seed, drain_seconds=round(drained_in, 1))
    report.print("kill -9")
    report.assert_ok()
    assert report.runs == 2 * RUNS_PER_PREFIX
    assert report.by_status == {"succeeded": 2 * RUNS_PER_PREFIX}
    assert kills >= 5, f"only {kills} kills happened: the scenario proved too little"
    assert report.reexecutions > 0, "no run was ever re-executed: the kills hit nothing"
