"""The benchmark suite's cost notes and target lines (pure: no database, no workers)."""

from __future__ import annotations

from benchmarks.common import Figure, Report
from benchmarks.costs import Costs, per_run_extra, per_run_note
from benchmarks.suite import targets


def test_cost_note_per_run() -> None:
    note = per_run_note(0.61, Costs(0.8, 26_100_000), 10_000)
    assert note == "CPU/run worker 61 µs, PG 80 µs; WAL 2,610 B/run"
    assert "PG n/a" in per_run_note(0.61, Costs(None, 0), 10_000)
    extra = per_run_extra(0.61, Costs(0.8, 26_100_000), 10_000)
    assert extra == {
        "worker_cpu_us_per_run": 61.0,
        "pg_cpu_us_per_run": 80.0,
        "wal_bytes_per_run": 2610.0,
    }
    assert per_run_extra(0.61, Costs(None, 0), 10_000)["pg_cpu_us_per_run"] is None


def _report(worker_us: float, pg_us: float | None, rate: float, lean: float) -> Report:
    report = Report()
    extra = {"worker_cpu_us_per_run": worker_us, "pg_cpu_us_per_run": pg_us}
    report.figures += [
        Figure("W2", "workfleet", "drain", rate, "runs/s", key="w2_p1", extra=extra),
        Figure("W2", "workfleet", "lean", lean, "runs/s", key="w2_p1_events_off"),
        Figure("W2", "pgqueuer", "b100", 10_000, "runs/s", key="p_w2_b100_p1"),
    ]
    return report


def test_targets_say_met_and_not_met() -> None:
    lines = targets(_report(40, 45, 12_000, 16_000))
    assert "- drain >= 1.0x pgqueuer best, default audit trail (1 proc): 1.20x -> met" in lines
    assert "- drain >= 1.5x pgqueuer best, lean audit trail (1 proc): 1.60x -> met" in lines
    assert "- CPU per run, worker + PostgreSQL <= 90 us (1 proc): 85 us -> met" in lines
    assert "- PostgreSQL CPU per run <= 45 us (1 proc): 45 us -> met" in lines
    slow = targets(_report(80, 90, 5_000, 6_000))
    assert "- CPU per run, worker + PostgreSQL <= 90 us (1 proc): 170 us -> NOT met" in slow
    assert "- drain >= 1.0x pgqueuer best, default audit trail (1 proc): 0.50x -> NOT met" in slow
    unmeasured = targets(_report(40, None, 5_000, 6_000))
    assert "- PostgreSQL CPU per run <= 45 us (1 proc): not measured" in unmeasured


def test_wall_checks_quote_the_faster_bare_loop() -> None:
    report = _report(80, 90, 5_000, 6_000)
    plain = {"worker_cpu_us_per_run": 10.0, "pg_cpu_us_per_run": 70.0}
    overlapped = {"worker_cpu_us_per_run": 12.0, "pg_cpu_us_per_run": 75.0}
    report.figures += [
        Figure("W4", "ceiling", "events", 8_000, "runs/s", key="w4_k100_p1_events", extra=plain),
        Figure(
            "W4",
            "ceiling",
            "ov",
            9_000,
            "runs/s",
            key="w4_k100_p1_events_overlap",
            extra=overlapped,
        ),
        Figure("W4", "ceiling", "lean", 12_000, "runs/s", key="w4_k100_p1"),
        Figure("W1", "workfleet", "batch", 30_000, "runs/s", key="w1_batch"),
        Figure("W1", "pgqueuer", "batch", 50_000, "runs/s", key="p_w1_batch"),
        Figure("W1", "raw", "insert", 35_000, "runs/s", key="w1_raw"),
        Figure("W1", "raw", "copy", 60_000, "runs/s", key="w1_copy"),
        Figure("W3", "pgqueuer", "pickup", 2.5, "ms p99", key="p_w3_notify"),
        Figure("W3", "bare", "pickup", 1.5, "ms p99", key="w3_bare"),
        Figure("W3", "bare", "pickup asyncio", 1.7, "ms p99", key="w3_bare_async"),
        Figure("W3", "bare", "pickup direct", 1.2, "ms p99", key="w3_bare_direct"),
    ]
    lines = targets(report)
    assert "  (wall check: the bare loop writing the same rows reaches 0.90x)" in lines
    assert "  (wall check: the bare loop without lifecycle events reaches 1.20x)" in lines
    assert "  (wall check: the bare loop with the audit events spends 87 us)" in lines
    assert "  (wall check: PostgreSQL spends 75 us per run of the bare loop's statements)" in lines
    assert "- batch submit >= 1.0x pgqueuer batch enqueue: 0.60x -> NOT met" in lines
    raw_copy = "a raw multi-row INSERT of the same rows reaches 0.70x, one COPY of all of them"
    assert f"  (wall check: {raw_copy} in one transaction 1.20x)" in lines
    assert "  (context: pgqueuer's pickup p99 in the same run: 2.50 ms)" in lines
    bare_loop = "a bare LISTEN + claim loop on the same schema: 1.50 ms p99 blocking"
    assert f"  (wall check: {bare_loop}, 1.70 on asyncio, 1.20 with libpq directly)" in lines
    assert not any("wall check" in line for line in targets(_report(80, 90, 5_000, 6_000)))
    peer = report.get("p_w2_b100_p1")
    assert peer is not None
    peer.extra = {"worker_cpu_us_per_run": 40.0, "pg_cpu_us_per_run": 35.0}
    context = "  (context: pgqueuer's best drain spends 75 us, 35 us of it in PostgreSQL)"
    assert context in targets(report)
