"""W3: pickup latency, from an INSERT's commit to its run starting, and its framework-free
floor. See docs/performance.md."""

from __future__ import annotations

import statistics
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from benchmarks.common import (
    NOOP_TYPE,
    Child,
    Figure,
    Report,
    dropped_afterwards,
    percentile,
    start_all,
    wait_until,
)
from benchmarks.workloads import Config, migrate_schema, remaining, table, worker_child


def produce(
    conn: psycopg.Connection[Any], schema: str, rate: float, seconds: float
) -> tuple[dict[int, float], list[float]]:
    """Insert one run every 1/rate s; the wall-clock time each autocommit INSERT returned."""
    stmt = sql.SQL("INSERT INTO {} (type, payload) VALUES (%s, %s)").format(table(schema))
    commits: dict[int, float] = {}
    round_trips: list[float] = []
    count = int(rate * seconds)
    t_start = time.monotonic()
    for i in range(count):
        delay = t_start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        before = time.time()
        conn.execute(stmt, [NOOP_TYPE, Jsonb({"seq": i})], prepare=True)
        commits[i] = time.time()
        round_trips.append(commits[i] - before)
    return commits, round_trips


def latencies_ms(commits: dict[int, float], starts: dict[str, float]) -> list[float]:
    return [(starts[str(i)] - t) * 1000 for i, t in commits.items() if str(i) in starts]


def latency_figures(
    report: Report,
    workload_system: tuple[str, str],
    variant: str,
    lat: list[float],
    expected: int,
    round_trips: list[float],
    key: str,
) -> None:
    workload, system = workload_system
    rtt = statistics.median(round_trips) * 1000 if round_trips else 0.0
    note = (
        f"p50 {percentile(lat, 50):.2f} / p95 {percentile(lat, 95):.2f} / "
        f"max {max(lat):.2f} ms; n={len(lat)}/{expected}; INSERT rtt {rtt:.2f} ms"
    )
    report.add(
        Figure(
            workload,
            system,
            variant,
            percentile(lat, 99),
            "ms p99",
            note=note,
            key=key,
            extra={
                "p50": percentile(lat, 50),
                "p95": percentile(lat, 95),
                "p99": percentile(lat, 99),
                "n": len(lat),
            },
        )
    )


def w3(cfg: Config, report: Report) -> None:
    for poll_only in (False, True):
        schema = migrate_schema(cfg, "w3")
        mode = "poll-only (poll_interval 5 s)" if poll_only else "NOTIFY"
        with dropped_afterwards(cfg.conninfo, schema):
            child = worker_child(
                cfg,
                schema,
                [f"bench.%={cfg.concurrency}"],
                "w3-worker",
                poll_only=poll_only,
                record_starts=True,
            )
            with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
                try:
                    start_all([child])
                    time.sleep(1.0)  # listener connected, first empty claim done
                    commits, rtts = produce(conn, schema, cfg.latency_rate, cfg.latency_seconds)
                    wait_until(lambda c=conn, s=schema: not remaining(c, s), timeout=60)
                finally:
                    child.stop()
            result = child.wait()
        lat = latencies_ms(commits, result["starts"])
        latency_figures(
            report,
            ("W3", "workfleet"),
            f"commit->start, {cfg.latency_rate:g}/s for {cfg.latency_seconds:g}s, {mode}",
            lat,
            len(commits),
            rtts,
            "w3_poll" if poll_only else "w3_notify",
        )
    w3_bare(cfg, report)


def w3_bare(cfg: Config, report: Report) -> None:
    """The floor under W3: a framework-free LISTEN + claim loop (``pickup_proc``) on the
    same schema, load and statement."""
    schema = migrate_schema(cfg, "w3b")
    argv = ["-m", "benchmarks.pickup_proc", "--conninfo", cfg.conninfo, "--schema", schema]
    with dropped_afterwards(cfg.conninfo, schema):
        child = Child(argv, "w3-bare")
        with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
            try:
                start_all([child])
                time.sleep(1.0)
                commits, rtts = produce(conn, schema, cfg.latency_rate, cfg.latency_seconds)
                wait_until(lambda c=conn, s=schema: not remaining(c, s), timeout=60)
            finally:
                child.stop()
        result = child.wait()
    latency_figures(
        report,
        ("W3", "bare"),
        f"commit->claimed, {cfg.latency_rate:g}/s for {cfg.latency_seconds:g}s, "
        "LISTEN + the hot claim, no framework",
        latencies_ms(commits, result["starts"]),
        len(commits),
        rtts,
        "w3_bare",
    )
