"""W4: the ceiling, framework-free claim/complete loops on workfleet's own schema
(``ceiling_proc``), with their CPU and WAL per run. See docs/performance.md."""

from __future__ import annotations

import psycopg

from benchmarks.common import Child, Figure, Report, dropped_afterwards, start_all
from benchmarks.costs import Meter, per_run_extra, per_run_note
from benchmarks.workloads import Config, insert_pending, last_finish, migrate_schema


def ceiling_drain(
    cfg: Config, processes: int, batch: int, n: int, events: bool, overlap: bool = False
) -> tuple[float, float, str, dict[str, float | None]]:
    """(runs/s, seconds, note, per-run costs) of ``processes`` bare claim/complete loops
    (``ceiling_proc``) over ``n`` runs; the note and the costs give CPU and WAL per run."""
    schema = migrate_schema(cfg, "w4")
    with dropped_afterwards(cfg.conninfo, schema):
        with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
            insert_pending(conn, schema, n)
        return bare_drain(cfg, schema, processes, batch, events, overlap)


def bare_drain(
    cfg: Config, schema: str, processes: int, batch: int, events: bool, overlap: bool = False
) -> tuple[float, float, str, dict[str, float | None]]:
    """:func:`ceiling_drain` over the pending runs ``schema`` already holds."""
    argv = ["-m", "benchmarks.ceiling_proc", "--conninfo", cfg.conninfo]
    argv += ["--schema", schema, "--batch", str(batch)]
    argv += (["--events"] if events else []) + (["--overlap"] if overlap else [])
    with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
        children = [Child(argv, f"w4-k{batch}-{i}") for i in range(processes)]
        meter = Meter(conn)
        start_all(children, meter.start)
        results = [c.wait(timeout=600) for c in children]
        costs = meter.stop()
        end, done = last_finish(conn, schema)
    start = float(min(r["first_start"] for r in results if r.get("first_start")))
    loop_cpu = sum(float(r.get("cpu_seconds", 0.0)) for r in results)
    note = per_run_note(loop_cpu, costs, done).replace("worker", "loop")
    return done / (end - start), end - start, note, per_run_extra(loop_cpu, costs, done)


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
