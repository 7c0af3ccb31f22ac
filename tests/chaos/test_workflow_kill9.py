"""Durable workflows under SIGKILL: a killed worker's workflows resume on a new worker at their
next step, and no step whose checkpoint was committed runs again (only the step in flight at
the kill may run twice); a workflow in a durable sleep survives its worker's SIGKILL untouched.

Side effects are lines the steps append to a file (one per step start), counted afterwards.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.chaos import db
from tests.chaos.plugin import WORKFLOW_STEPS
from tests.chaos.procs import WorkerProcess, worker_env
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

RUNS = 20


def _effects(path: Path) -> list[tuple[str, str, str]]:
    """(run id, step, worker id) per step start, in the order they happened."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(a, b, c) for a, b, c in (line.split(" ") for line in lines)]


async def _finished_steps(dsn: str, schema: str) -> set[tuple[str, str]]:
    rows = await db.rows(
        dsn, schema, "SELECT run_id::text, key FROM workflow_step WHERE status = 'succeeded'"
    )
    return {(r[0], r[1]) for r in rows}


@pytest.mark.timeout(120)
async def test_kill9_mid_workflow_resumes_at_the_next_step(
    pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.txt"

    def spawn(name: str) -> WorkerProcess:
        env = worker_env(
            pg_dsn,
            schema,
            name,
            WORKFLEET_PREFIXES="chaos.wf.%=10",
            CHAOS_EFFECTS_FILE=str(effects),
        )
        return WorkerProcess(env, tmp_path)

    first = spawn("wf-k9-first")
    second: WorkerProcess | None = None
    try:
        await db.insert_many(pg_dsn, schema, "chaos.wf.steps.v1", RUNS, "'{\"ms\": 150}'::jsonb")
        total = RUNS * len(WORKFLOW_STEPS)

        # kill once a good share of the steps finished, while every run is still unfinished
        async def midway() -> bool:
            return len(await _finished_steps(pg_dsn, schema)) >= total // 4

        await eventually(midway, 30, every=0.01)
        first.kill()
        # nothing commits after the kill: these are the finished steps that must never rerun
        finished = await _finished_steps(pg_dsn, schema)
        at_kill = _effects(effects)
        assert len(finished) < total, "every step finished before the kill: it proved nothing"
        in_flight = {(r, s) for r, s, _ in at_kill} - finished
        assert in_flight, "no step was running when the worker died"

        second = spawn("wf-k9-second")

        async def drained() -> bool:
            return await db.unfinished(pg_dsn, schema) == 0

        await eventually(drained, 60, every=0.1)
        assert second.terminate(30) == 0
    finally:
        first.close(force=True)
        if second is not None:
            second.close()

    statuses = await db.rows(pg_dsn, schema, "SELECT status, count(*) FROM workflow_run GROUP BY 1")
    assert dict(statuses) == {"succeeded": RUNS}

    starts = Counter((r, s) for r, s, _ in _effects(effects))
    results = await db.rows(pg_dsn, schema, "SELECT id::text, result FROM workflow_run")
    every_step = {(run, s) for run, _ in results for s in WORKFLOW_STEPS}
    assert set(starts) == every_step, "a step never ran"
    twice = {k: n for k, n in starts.items() if n > 1}
    print(
        f"workflow kill -9: {RUNS} runs x {len(WORKFLOW_STEPS)} steps, {len(finished)} finished "
        f"at the kill, {len(in_flight)} in flight, {len(twice)} ran again"
    )
    # the guarantee: a step whose checkpoint was committed never ran again
    assert not set(twice) & finished, f"finished steps ran again: {set(twice) & finished}"
    # only the step each run had in flight at the kill may have run twice, and only once more
    assert set(twice) <= in_flight, twice
    assert all(n == 2 for n in twice.values()), twice

    # the new worker resumed each run at its first unfinished step, not from the beginning
    resumed_at: dict[str, str] = {}
    for run, step, worker in _effects(effects):
        if worker == "wf-k9-second":
            resumed_at.setdefault(run, step)
    done_before: defaultdict[str, int] = defaultdict(int)
    for run, _ in finished:
        done_before[run] += 1
    for run, step in resumed_at.items():
        assert step == WORKFLOW_STEPS[done_before[run]], (run, step, done_before[run])
    assert len(resumed_at) == RUNS - sum(n == len(WORKFLOW_STEPS) for n in done_before.values())

    # each run's result holds the outputs its checkpoints stored: finished steps kept theirs
    for run, result in results:
        for step, output in zip(WORKFLOW_STEPS, result, strict=True):
            name, worker = output.split("@")
            assert name == step
            expected = "wf-k9-first" if (run, step) in finished else "wf-k9-second"
            assert worker == expected, (run, step, worker)


@pytest.mark.timeout(60)
async def test_kill9_during_a_durable_sleep(pg_dsn: str, schema: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"

    def spawn(name: str) -> WorkerProcess:
        env = worker_env(
            pg_dsn,
            schema,
            name,
            WORKFLEET_PREFIXES="chaos.wf.%=4",
            CHAOS_EFFECTS_FILE=str(effects),
        )
        return WorkerProcess(env, tmp_path)

    first = spawn("wf-sleep-first")
    second: WorkerProcess | None = None
    try:
        run_id = await db.scalar(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload) "
            "VALUES ('chaos.wf.sleep.v1', '{\"sleep\": 3}') RETURNING id",
        )

        async def sleeping() -> bool:
            rows = await db.rows(
                pg_dsn,
                schema,
                "SELECT status, wait_kind, leased_by FROM workflow_run WHERE id = %s",
                run_id,
            )
            return rows[0] == ("pending", "sleep", None)

        await eventually(sleeping, 20)
        # the sleeping run holds no lease: killing its worker leaves nothing to recover
        first.kill()
        wake_at = await db.scalar(
            pg_dsn, schema, "SELECT run_at FROM workflow_run WHERE id = %s", run_id
        )
        second = spawn("wf-sleep-second")

        async def done() -> bool:
            status = await db.scalar(
                pg_dsn, schema, "SELECT status FROM workflow_run WHERE id = %s", run_id
            )
            return status == "succeeded"

        await eventually(done, 30, every=0.05)
        assert second.terminate(30) == 0
    finally:
        first.close(force=True)
        if second is not None:
            second.close()

    assert [(s, w) for _, s, w in _effects(effects)] == [
        ("before", "wf-sleep-first"),
        ("after", "wf-sleep-second"),
    ]
    # woken on time, not after a lease expiry or a failed attempt
    row = await db.rows(
        pg_dsn,
        schema,
        "SELECT r.attempt, extract(epoch FROM s.started_at - %s::timestamptz) "
        "FROM workflow_run r JOIN workflow_step s ON s.run_id = r.id AND s.key = 'after' "
        "WHERE r.id = %s",
        wake_at,
        run_id,
    )
    attempt, late = row[0]
    assert attempt == 0
    assert 0 <= float(late) < 2.0, late
