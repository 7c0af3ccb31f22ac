"""The durable-workflow workloads W7-W9 (one worker process each). See docs/performance.md.

- W7: pre-inserted 10-step no-op workflows drained by one worker process: workflows/s and
  steps/s, from the first workflow execution starting to the last outcome commit.
- W8: workflows waiting for a signal; signals sent one at a time by plain SQL ``INSERT``; the
  time from the INSERT's commit returning to the step after the wait starting, and to the
  workflow's outcome commit.
- W9: one workflow starting 1,000 no-op children in one statement and gathering them: wall time
  from the parent's INSERT commit to its outcome commit, with where the time went.

The workflows are in ``benchmarks/worker_proc.py`` (``bench.wf.*``); their children are the
no-op runs of W2, served by the same process.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.common import Figure, Report, dropped_afterwards, start_all, wait_until
from benchmarks.pickup import latency_figures
from benchmarks.workloads import (
    Config,
    migrate_schema,
    remaining,
    table,
    worker_child,
)

STEPS_TYPE = "bench.wf.steps.v1"
SIGNAL_TYPE = "bench.wf.signal.v1"
FAN_TYPE = "bench.wf.fan.v1"
STEPS_PER_WORKFLOW = 10


def _scalar(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query.encode(), params or None).fetchone()
    return None if row is None else row[0]


def _use(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))


# --- W7 ------------------------------------------------------------------------------------------


def w7(cfg: Config, report: Report, profile: Any = None) -> None:
    """W7; ``profile`` (a :class:`benchmarks.profile.Profiler`) samples the worker."""
    n = cfg.workflows
    schema = migrate_schema(cfg, "w7")
    with (
        dropped_afterwards(cfg.conninfo, schema),
        psycopg.connect(cfg.conninfo, autocommit=True) as conn,
    ):
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (type, payload) SELECT %s, jsonb_build_object('seq', g) "
                "FROM generate_series(1, %s) g"
            ).format(table(schema)),
            [STEPS_TYPE, n],
        )
        conn.execute(sql.SQL("ANALYZE {}").format(table(schema)))
        child = worker_child(cfg, schema, [f"bench.%={cfg.concurrency}"], "w7-worker")
        try:
            child.wait_ready()
            if profile is not None:
                profile.attach(child.pid)
            child.go()
            wait_until(lambda: not remaining(conn, schema), timeout=900, interval=0.1)
        finally:
            if profile is not None:
                profile.detach()
            child.stop()
        result = child.wait()
        _use(conn, schema)
        end = float(
            _scalar(
                conn,
                "SELECT extract(epoch FROM max(updated_at)) FROM workflow_run "
                "WHERE status = 'succeeded' AND type = %s",
                STEPS_TYPE,
            )
        )
        done = int(_scalar(conn, "SELECT count(*) FROM workflow_run WHERE status = 'succeeded'"))
        steps = int(_scalar(conn, "SELECT count(*) FROM workflow_step"))
        executions = int(
            _scalar(conn, "SELECT count(*) FROM workflow_event WHERE event_type = 'leased'")
        )
    if done != n or steps != n * STEPS_PER_WORKFLOW:
        raise RuntimeError(f"W7: {done}/{n} workflows and {steps} checkpoints")
    seconds = end - float(result["first_start"])
    note = (
        f"{n:,} workflows in {seconds:.2f}s; {executions / n:.2f} executions per workflow; "
        f"worker CPU {result['cpu_seconds']:.1f}s"
    )
    variant = f"{STEPS_PER_WORKFLOW}-step no-op workflow, 1 proc x concurrency {cfg.concurrency}"
    report.add(Figure("W7", "workfleet", variant, n / seconds, "workflows/s", note, "w7_wf"))
    report.add(
        Figure(
            "W7",
            "workfleet",
            variant,
            n * STEPS_PER_WORKFLOW / seconds,
            "steps/s",
            f"{n * STEPS_PER_WORKFLOW / result['cpu_seconds']:,.0f} steps per worker CPU second",
            "w7_steps",
        )
    )


# --- W8 ------------------------------------------------------------------------------------------


def w8(cfg: Config, report: Report) -> None:
    n = cfg.signals
    schema = migrate_schema(cfg, "w8")
    with dropped_afterwards(cfg.conninfo, schema):
        child = worker_child(
            cfg, schema, [f"bench.%={cfg.concurrency}"], "w8-worker", record_starts=True
        )
        with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
            _use(conn, schema)
            try:
                start_all([child])
                rows = conn.execute(
                    "INSERT INTO workflow_run (type, payload) "
                    "SELECT %s, jsonb_build_object('seq', g) "
                    "FROM generate_series(0, %s - 1) g RETURNING id, (payload->>'seq')::int",
                    [SIGNAL_TYPE, n],
                ).fetchall()
                ids = [r[0] for r in rows]
                seqs = {r[0]: int(r[1]) for r in rows}

                def all_waiting() -> bool:
                    waiting = _scalar(
                        conn,
                        "SELECT count(*) FROM workflow_run "
                        "WHERE status = 'pending' AND wait_kind = 'signal'",
                    )
                    return int(waiting) == n

                wait_until(all_waiting, timeout=120, interval=0.1)
                time.sleep(0.5)  # the worker idle again: nothing else in flight
                commits, rtts = _send_signals(conn, ids, seqs, cfg.latency_rate)
                wait_until(lambda: not remaining(conn, schema), timeout=120, interval=0.05)
                finished = {
                    int(r[0]): float(r[1])
                    for r in conn.execute(
                        "SELECT (payload->>'seq')::int, extract(epoch FROM updated_at) "
                        "FROM workflow_run WHERE type = %s AND status = 'succeeded'",
                        [SIGNAL_TYPE],
                    ).fetchall()
                }
            finally:
                child.stop()
        result = child.wait()
    starts: dict[str, float] = result["starts"]
    to_step = [(starts[str(s)] - t) * 1000 for s, t in commits.items() if str(s) in starts]
    to_done = [(finished[s] - t) * 1000 for s, t in commits.items() if s in finished]
    rate = f"{cfg.latency_rate:g}/s"
    latency_figures(
        report,
        ("W8", "workfleet"),
        f"signal INSERT commit -> step after the wait starts, {n} waits, {rate}",
        to_step,
        n,
        rtts,
        "w8_step",
    )
    latency_figures(
        report,
        ("W8", "workfleet"),
        f"signal INSERT commit -> workflow outcome committed, {n} waits, {rate}",
        to_done,
        n,
        rtts,
        "w8_done",
    )


def _send_signals(
    conn: psycopg.Connection[Any], ids: list[Any], seqs: dict[Any, int], rate: float
) -> tuple[dict[int, float], list[float]]:
    """One autocommit signal INSERT every 1/rate s, as any producer would send it; the
    wall-clock time each commit returned, by the run's ``seq``."""
    commits: dict[int, float] = {}
    round_trips: list[float] = []
    t_start = time.monotonic()
    for i, run_id in enumerate(ids):
        delay = t_start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        before = time.time()
        conn.execute(
            "INSERT INTO workflow_signal (run_id, name, payload) VALUES (%s, 'go', '{}')",
            [run_id],
            prepare=True,
        )
        commits[seqs[run_id]] = time.time()
        round_trips.append(commits[seqs[run_id]] - before)
    return commits, round_trips


# --- W9 ------------------------------------------------------------------------------------------

FAN_BREAKDOWN = """
SELECT extract(epoch FROM max(c.created_at) - p.created_at),
       extract(epoch FROM max(c.updated_at) - p.created_at),
       extract(epoch FROM p.updated_at - p.created_at),
       count(c.id) FILTER (WHERE c.status = 'succeeded'),
       (SELECT count(*) FROM workflow_event e
        WHERE e.workflow_id = p.id AND e.event_type = 'leased')
FROM workflow_run p JOIN workflow_run c ON c.parent_id = p.id
WHERE p.id = %s
GROUP BY p.id
"""


def w9(cfg: Config, report: Report) -> None:
    n = cfg.fan_out
    schema = migrate_schema(cfg, "w9")
    with dropped_afterwards(cfg.conninfo, schema):
        child = worker_child(cfg, schema, [f"bench.%={cfg.concurrency}"], "w9-worker")
        with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
            _use(conn, schema)
            try:
                start_all([child])
                time.sleep(1.0)  # listener connected, first empty claim done
                # the wall time runs from the parent's created_at (its INSERT, database clock)
                parent = _scalar(
                    conn,
                    "INSERT INTO workflow_run (type, payload) "
                    "VALUES (%s, jsonb_build_object('n', %s::int)) RETURNING id",
                    FAN_TYPE,
                    n,
                )

                def parent_done() -> bool:
                    status = _scalar(conn, "SELECT status FROM workflow_run WHERE id = %s", parent)
                    return status in ("succeeded", "failed", "cancelled")

                wait_until(parent_done, timeout=600, interval=0.05)
                status, result = conn.execute(
                    "SELECT status, result FROM workflow_run WHERE id = %s", [parent]
                ).fetchone() or (None, None)
                row = conn.execute(FAN_BREAKDOWN.encode(), [parent]).fetchone()
            finally:
                child.stop()
        child.wait()
    if status != "succeeded" or result != n or row is None:
        raise RuntimeError(f"W9: the parent ended {status} with {result!r}")
    started, children_done, wall, ok, executions = row
    note = (
        f"children created by {float(started):.2f}s, all final by {float(children_done):.2f}s, "
        f"parent done {float(wall) - float(children_done):.2f}s later; {ok} ok; "
        f"parent executed {executions}x; {n / float(wall):,.0f} children/s"
    )
    report.add(
        Figure(
            "W9",
            "workfleet",
            f"fan-out/fan-in of {n:,} no-op children, 1 proc x concurrency {cfg.concurrency}",
            float(wall),
            "s",
            note,
            "w9_fan",
            extra={"started": float(started), "children_done": float(children_done)},
        )
    )
