"""workfleet benchmark suite: W1-W9 plus the W4 ceiling and the pgqueuer peer, one table.

    python -m benchmarks [--quick] [--only w1,w2,...] [--no-peer] [--database-url URL]

Everything runs against one PostgreSQL in one invocation, so the ratios compare figures taken
side by side. Each workload creates its own schema and drops it afterwards. Database:
``--database-url``, else ``$WORKFLEET_DATABASE_URL`` / ``$DATABASE_URL``, else an embedded
pgserver under ``.workfleet/bench-pg``. See docs/performance.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from benchmarks.ceiling import w4
from benchmarks.common import STATE, Figure, Report, conninfo_of, database_url, load_average
from benchmarks.pickup import w3
from benchmarks.workflows import w7, w8, w9
from benchmarks.workloads import (
    Config,
    server_facts,
    w1,
    w2,
    w2_debug_logs,
    w2_events_off,
    w5,
    w6_idle,
)

ALL = ("w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "peer", "profile")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", help="PostgreSQL URL (default: environment, else embedded)")
    p.add_argument("--quick", action="store_true", help="small N, a few seconds per workload")
    p.add_argument(
        "--only",
        default=",".join(ALL),
        help=f"comma-separated subset of {', '.join(ALL)} (default: all)",
    )
    p.add_argument("--no-peer", action="store_true", help="skip pgqueuer (no virtualenv/install)")
    p.add_argument("--runs", type=int, help="runs per drain (default 50,000; quick 2,000)")
    p.add_argument("--concurrency", type=int, default=100, help="worker prefix concurrency")
    p.add_argument("--json", help="also write all figures as JSON to this file")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    url = database_url(args.database_url)
    cfg = Config(url=url, conninfo=conninfo_of(url), concurrency=args.concurrency)
    if args.quick:
        cfg.runs = 2_000
        cfg.enqueue_single = 200
        cfg.latency_seconds = 2.0
        cfg.history = 20_000
        cfg.workflows = 500
        cfg.signals = 50
        cfg.quick = True
    if args.runs:
        cfg.runs = args.runs
    return cfg


def ratio(a: Figure | None, b: Figure | None) -> float | None:
    if a is None or b is None or not b.value:
        return None
    return a.value / b.value


def best(report: Report, prefix: str, suffix: str) -> Figure | None:
    found = [f for f in report.figures if f.key.startswith(prefix) and f.key.endswith(suffix)]
    return max(found, key=lambda f: f.value) if found else None


def comparisons(report: Report, fig: Figure) -> tuple[Figure | None, Figure | None]:
    """(pgqueuer figure, ceiling figure) this figure is compared with."""
    key = fig.key
    for p in ("1", "2"):
        if key in (f"w2_p{p}", f"w5_p{p}", f"w2_p{p}_debug", f"w2_p{p}_events_off"):
            return best(report, "p_w2_b", f"_p{p}"), report.get(f"w4_k100_p{p}")
        if key.startswith("p_w2_") and key.endswith(f"_p{p}"):
            return None, report.get(f"w4_k100_p{p}")
        if key.startswith("w4_") and key.endswith(
            (f"_p{p}", f"_p{p}_events", f"_p{p}_overlap", f"_p{p}_events_overlap")
        ):
            return None, report.get(f"w4_k100_p{p}")
    peers = {"w1_single": "p_w1_single", "w1_batch": "p_w1_batch", "w3_notify": "p_w3_notify"}
    if key in peers:
        return report.get(peers[key]), None
    return None, None


def fmt_value(fig: Figure) -> str:
    if math.isnan(fig.value):
        return "n/a"
    text = f"{fig.value:,.2f}" if fig.value < 100 else f"{fig.value:,.0f}"
    return f"{text} {fig.unit}"


def fmt_ratio(r: float | None) -> str:
    return "" if r is None else f"{r:.2f}x"


def table(report: Report) -> str:
    lines = [
        "| workload | system | variant | figure | vs pgqueuer best | vs W4 k=100 | note |",
        "|---|---|---|---|---|---|---|",
    ]
    order = {f"W{i}": i for i in range(1, 10)}
    for fig in sorted(report.figures, key=lambda f: order.get(f.workload, 9)):
        peer, ceiling = comparisons(report, fig)
        lines.append(
            f"| {fig.workload} | {fig.system} | {fig.variant} | {fmt_value(fig)} | "
            f"{fmt_ratio(ratio(fig, peer))} | {fmt_ratio(ratio(fig, ceiling))} | {fig.note} |"
        )
    return "\n".join(lines)


class _Lines:
    """The target lines being written: a target with its verdict, a wall check, a context."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def check(
        self, name: str, value: float | None, ok: Callable[[float], bool], shown: str
    ) -> None:
        if value is None or math.isnan(value):
            self.out.append(f"- {name}: not measured")
        else:
            verdict = "met" if ok(value) else "NOT met"
            self.out.append(f"- {name}: {shown.format(value)} -> {verdict}")

    def wall(self, text: str) -> None:
        self.out.append(f"  (wall check: {text})")

    def context(self, text: str) -> None:
        self.out.append(f"  (context: {text})")


def targets(report: Report) -> list[str]:
    """Each target with the measured value and a plain met / NOT met / not measured; beside
    it, the framework-free loop that bounds it (a wall check) where the suite has one."""
    t = _Lines()
    for p in ("1", "2"):
        _drain_targets(t, report, p)
    _other_targets(t, report)
    return t.out


def _drain_targets(t: _Lines, report: Report, p: str) -> None:
    wf = report.get(f"w2_p{p}")
    peer_best = best(report, "p_w2_b", f"_p{p}")
    # the framework-free loops that write the same rows as the runtime (with the audit events)
    # and as its lean setting (without): the faster of plain and overlapped
    bare_trail = _faster(
        report.get(f"w4_k100_p{p}_events"), report.get(f"w4_k100_p{p}_events_overlap")
    )
    bare_lean = _faster(report.get(f"w4_k100_p{p}"), report.get(f"w4_k100_p{p}_overlap"))
    t.check(
        f"drain >= 1.0x pgqueuer best, default audit trail ({p} proc)",
        ratio(wf, peer_best),
        lambda v: v >= 1.0,
        "{:.2f}x",
    )
    trail_vs_peer = ratio(bare_trail, peer_best)
    if trail_vs_peer is not None:
        t.wall(f"the bare loop writing the same rows reaches {trail_vs_peer:.2f}x")
    t.check(
        f"drain >= 1.5x pgqueuer best, lean audit trail ({p} proc)",
        ratio(report.get(f"w2_p{p}_events_off"), peer_best),
        lambda v: v >= 1.5,
        "{:.2f}x",
    )
    lean_vs_peer = ratio(bare_lean, peer_best)
    if lean_vs_peer is not None:
        t.wall(f"the bare loop without lifecycle events reaches {lean_vs_peer:.2f}x")
    extra = wf.extra if wf is not None else {}
    worker_us, pg_us = extra.get("worker_cpu_us_per_run"), extra.get("pg_cpu_us_per_run")
    bare = bare_trail.extra if bare_trail is not None else {}
    bare_loop_us, bare_pg_us = bare.get("worker_cpu_us_per_run"), bare.get("pg_cpu_us_per_run")
    t.check(
        f"CPU per run, worker + PostgreSQL <= 90 us ({p} proc)",
        None if worker_us is None or pg_us is None else worker_us + pg_us,
        lambda v: v <= 90,
        "{:.0f} us",
    )
    if bare_loop_us is not None and bare_pg_us is not None:
        t.wall(f"the bare loop with the audit events spends {bare_loop_us + bare_pg_us:.0f} us")
    peer = peer_best.extra if peer_best is not None else {}
    peer_worker_us, peer_pg_us = peer.get("worker_cpu_us_per_run"), peer.get("pg_cpu_us_per_run")
    if peer_worker_us is not None and peer_pg_us is not None:
        t.context(
            f"pgqueuer's best drain spends {peer_worker_us + peer_pg_us:.0f} us, "
            f"{peer_pg_us:.0f} us of it in PostgreSQL"
        )
    t.check(
        f"PostgreSQL CPU per run <= 45 us ({p} proc)",
        pg_us,
        lambda v: v <= 45,
        "{:.0f} us",
    )
    if bare_pg_us is not None:
        t.wall(f"PostgreSQL spends {bare_pg_us:.0f} us per run of the bare loop's statements")
    t.check(
        f"drain >= 60% of W4 ceiling k=100 ({p} proc)",
        ratio(wf, report.get(f"w4_k100_p{p}")),
        lambda v: v >= 0.6,
        "{:.0%}",
    )
    with_events = ratio(wf, report.get(f"w4_k100_p{p}_events"))
    if with_events is not None:
        t.out.append(
            f"  (context, not a target: {with_events:.0%} of the bare loop that writes the "
            "same audit events)"
        )


def _other_targets(t: _Lines, report: Report) -> None:
    w3n = report.get("w3_notify")
    t.check(
        "pickup p99 <= 2.0 ms at 50 runs/s with NOTIFY",
        w3n.value if w3n else None,
        lambda v: v <= 2.0,
        "{:.2f} ms",
    )
    bare_w3 = report.get("w3_bare")
    if bare_w3 is not None:
        forms = [("on asyncio", report.get("w3_bare_async"))]
        forms.append(("with libpq directly", report.get("w3_bare_direct")))
        others = "".join(f", {f.value:.2f} {how}" for how, f in forms if f is not None)
        t.wall(
            f"a bare LISTEN + claim loop on the same schema: {bare_w3.value:.2f} ms p99 "
            f"blocking{others}"
        )
    peer_w3 = report.get("p_w3_notify")
    if peer_w3 is not None:
        t.context(f"pgqueuer's pickup p99 in the same run: {peer_w3.value:.2f} ms")
    peer_batch = report.get("p_w1_batch")
    t.check(
        "batch submit >= 1.0x pgqueuer batch enqueue",
        ratio(report.get("w1_batch"), peer_batch),
        lambda v: v >= 1.0,
        "{:.2f}x",
    )
    raw, copy = ratio(report.get("w1_raw"), peer_batch), ratio(report.get("w1_copy"), peer_batch)
    if raw is not None and copy is not None:
        t.wall(
            f"a raw multi-row INSERT of the same rows reaches {raw:.2f}x, one COPY of all of "
            f"them in one transaction {copy:.2f}x"
        )
    t.check(
        "batch submit >= 75% of raw multi-row INSERT",
        ratio(report.get("w1_batch"), report.get("w1_raw")),
        lambda v: v >= 0.75,
        "{:.0%}",
    )
    for kind in ("single", "batch"):
        on, off = report.get(f"w1_{kind}"), report.get(f"w1_{kind}_notrig")
        r = ratio(on, off)
        t.check(
            f"trigger cost <= 10% ({kind} enqueue)",
            None if r is None else 1 - r,
            lambda v: v <= 0.10,
            "{:.0%}",
        )
    r5 = ratio(report.get("w5_p1"), report.get("w2_p1"))
    t.check(
        "W5 within 10% of W2 (1 proc)",
        None if r5 is None else 1 - r5,
        lambda v: v <= 0.10,
        "{:.0%} slower",
    )
    idle = report.get("w6_idle")
    t.check(
        "idle RSS <= 80 MiB (4 prefixes)",
        idle.value if idle else None,
        lambda v: v <= 80,
        "{:.1f} MiB",
    )


def _faster(a: Figure | None, b: Figure | None) -> Figure | None:
    if a is None or b is None:
        return a or b
    return a if a.value >= b.value else b


def machine() -> dict[str, Any]:
    mem_kib = 0
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_profile(cfg: Config, report: Report) -> list[str]:
    from benchmarks.profile import Profiler, summarise
    from benchmarks.workloads import drain_fresh

    profiler = Profiler()
    res = drain_fresh(cfg, 1, "prof", runs=cfg.runs * 2, profile=profiler)
    total, own, inclusive = summarise(profiler.out)
    lines = [
        f"py-spy, {profiler.rate} Hz, 1 worker process draining {res.done:,} no-op runs "
        f"({res.rate:,.0f} runs/s while sampled); {total:,} non-idle samples",
        "",
        "top functions by self time (on top of the stack):",
    ]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in own]
    lines += ["", "top functions by inclusive time (anywhere on the stack):"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in inclusive]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wanted = {w.strip().lower() for w in args.only.split(",") if w.strip()}
    if args.no_peer:
        wanted.discard("peer")
    if args.quick:
        wanted.discard("profile")
    cfg = make_config(args)
    report = Report()
    facts = server_facts(cfg.conninfo)
    started = time.monotonic()
    print(
        f"workfleet benchmarks: PostgreSQL {facts['server_version']}, {machine()}, "
        f"load average {load_average():.2f}{' (quick)' if args.quick else ''}",
        flush=True,
    )
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("w1", lambda: w1(cfg, report)),
        ("w4", lambda: w4(cfg, report)),
        ("w2", lambda: w2(cfg, report)),
        ("w2", lambda: w2_events_off(cfg, report)),
        ("w2", lambda: w2_debug_logs(cfg, report) if not cfg.quick else None),
        ("w3", lambda: w3(cfg, report)),
        ("w5", lambda: w5(cfg, report)),
        ("w6", lambda: w6_idle(cfg, report)),
        ("w7", lambda: w7(cfg, report)),
        ("w8", lambda: w8(cfg, report)),
        ("w9", lambda: w9(cfg, report)),
    ]
    plan: list[str] = []
    profile: list[str] = []
    for name, step in steps:
        if name in wanted:
            result = step()
            if name == "w5" and result:
                plan = result
    if "peer" in wanted:
        from benchmarks import peer

        version = peer.ensure_venv()
        report.notes.append(f"pgqueuer {version}; {peer.PGQ_DEFAULTS}")
        pgq = peer.Pgq(cfg)
        peer.peer_w1(cfg, pgq, report)
        peer.peer_w2(cfg, pgq, report, (10, 100))
        peer.peer_w3(cfg, pgq, report)
    if "profile" in wanted:
        profile = run_profile(cfg, report)
    elapsed = time.monotonic() - started

    print()
    print(table(report))
    print()
    print("targets:")
    print("\n".join(targets(report)))
    for note in report.notes:
        print(f"note: {note}")
    if plan:
        print("\nW5 claim plan (EXPLAIN, 1M finished runs in the table):")
        print("\n".join(f"  {line}" for line in plan))
    if profile:
        print("\nW2 profile:")
        print("\n".join(profile))
    print(f"\nwall time {elapsed:.0f}s; load average now {load_average():.2f}")
    payload = {
        "machine": machine(),
        "server": facts,
        "figures": report.to_json(),
        "notes": report.notes,
        "plan": plan,
        "profile": profile,
        "seconds": elapsed,
    }
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "last-run.json").write_text(json.dumps(payload, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
    return 0
