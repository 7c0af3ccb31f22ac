"""W4: the ceiling, framework-free claim/complete loops on workfleet's own schema
(``ceiling_proc``), with their CPU and WAL per run. See docs/performance.md."""

from __future__ import annotations

from typing import Any

import psycopg

from benchmarks.common import Child, Figure, Report, dropped_afterwards
from benchmarks.costs import Meter, per_run_note
from benchmarks.workloads import Config, insert_pending, last_finish, migrate_schema


def ceiling_drain(
    cfg: Config, processes: int, batch: int, n: int, events: bool, overlap: bool = False
) -> tuple[float, float, str, dict[str, Any]]:
    """(runs/s, seconds, note, per-run costs) of ``processes`` bare claim/complete loops
    (``ceiling_proc``) over ``n`` runs; the note and the costs give CPU and WAL per run."""
    schema = migrate_schema(cfg, "w4")
    argv = ["-m", "benchmarks.ceiling_proc", "--conninfo", cfg.conninfo]
    argv += ["--schema", schema, "--batch", str(batch)]
    argv += (["--events"] if events else []) + (["--overlap"] if overlap else [])
    with (
        dropped_afterwards(cfg.conninfo, schema),
        psycopg.connect(cfg.conninfo, autocommit=True) as conn,
    ):
        insert_pending(conn, schema, n)
        children = [Child(argv, f"w4-k{batch}-{i}") for i in range(processes)]
        for child in children:
            child.wait_ready()
        meter = Meter(conn)
        meter.start()
        for child in children:
            child.go()
        results = [c.wait(timeout=600) for c in children]
        costs = meter.stop()
        end, done = last_finish(conn, schema)
    start = float(min(r["first_start"] for r in results if r.get("first_start")))
    loop_cpu = sum(float(r.get("cpu_seconds", 0.0)) for r in results)
    note = per_run_note(loop_cpu, costs, done).replace("worker", "loop")
    extra = {
        "worker_cpu_us_per_run": loop_cpu / done * 1e6,
        "pg_cpu_us_per_run": None
        if costs.pg_cpu_seconds is None
        else costs.pg_cpu_seconds / done * 1e6,
        "wal_bytes_per_run": costs.wal_bytes / done,
    }
    return done / (end - start), end - start, note, extra


def w4(cfg: Config, report: Report) -> None:
    for processes in cfg.processes:
        for batch in cfg.ceiling_batches:
            n = cfg.runs if batch > 1 else max(1000, min(5000, cfg.runs // 4))
            rate, seconds, costs, extra = ceiling_drain(cfg, processes, batch, n, events=False)
            report.add(
                Figure(
                    "W4",
                    "ceiling",
                    f"bare claim+complete, k={batch}, {processes} proc ({n:,} runs)",
                    rate,
                    "runs/s",
                    note=f"{seconds:.2f}s; {costs}",
                    key=f"w4_k{batch}_p{processes}",
                    extra=extra,
                )
            )
        batch = max(cfg.ceiling_batches)
        variants = (
            (False, True, "overlapped", "_overlap"),
            (True, False, "with the audit events", "_events"),
            (True, True, "overlapped, with the audit events", "_events_overlap"),
        )
        for events, overlap, label, suffix in variants:
            rate, seconds, costs, extra = ceiling_drain(
                cfg, processes, batch, cfg.runs, events, overlap
            )
            trail = "; leased+started+succeeded rows as the runtime" if events else ""
            report.add(
                Figure(
                    "W4",
                    "ceiling",
                    f"bare claim+complete, k={batch}, {processes} proc, {label}",
                    rate,
                    "runs/s",
                    note=f"{seconds:.2f}s{trail}; {costs}",
                    key=f"w4_k{batch}_p{processes}{suffix}",
                    extra=extra,
                )
            )
