"""W3: pickup latency, from an INSERT's commit to its run starting, and its framework-free
floor. See docs/performance.md.

The runtime (NOTIFY) and the three floors (a framework-free LISTEN + claim loop: blocking, on
asyncio, and on asyncio with libpq used directly) run side by side, each on its own schema, and
take turns: the inserts go to one of them at a time, in segments of about 2.5 s ordered
runtime, blocking, asyncio, direct, then backwards, so that this machine's slow phases (its
round trips swing by half) fall on all of them alike. Poll-only mode runs on its own
afterwards."""

from __future__ import annotations

import statistics
import time
from contextlib import ExitStack
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

# Length of one turn: long enough for a few hundred ms of warm-up not to matter, short enough
# that a slow phase of this machine spans turns of both
SEGMENT_SECONDS = 2.5


class Produced:
    """What one system was sent: commit time by sequence number, INSERT round trips."""

    def __init__(self) -> None:
        self.commits: dict[int, float] = {}
        self.round_trips: list[float] = []
        self.segments = 0


def produce(
    conn: psycopg.Connection[Any], schema: str, rate: float, seconds: float, into: Produced
) -> None:
    """Insert one run every 1/rate s for ``seconds``, numbered on from what ``into`` holds;
    record the wall-clock time each autocommit INSERT returned."""
    stmt = sql.SQL("INSERT INTO {} (type, payload) VALUES (%s, %s)").format(table(schema))
    first = len(into.commits)
    t_start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = t_start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        seq = first + i
        before = time.time()
        conn.execute(stmt, [NOOP_TYPE, Jsonb({"seq": seq})], prepare=True)
        into.commits[seq] = time.time()
        into.round_trips.append(into.commits[seq] - before)
    into.segments += 1


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
    w3_notify_and_floor(cfg, report)
    w3_poll_only(cfg, report)


SYSTEMS = ("runtime", "bare", "bare_async", "bare_direct")


def turns(cfg: Config) -> list[tuple[str, float]]:
    """The order of the segments, (system, seconds) each: the :data:`SYSTEMS` in turn, every
    other round backwards (ABC CBA ...), ``cfg.latency_seconds`` in all for each."""
    per_system = max(2, round(cfg.latency_seconds / SEGMENT_SECONDS))
    seconds = cfg.latency_seconds / per_system
    order: list[tuple[str, float]] = []
    for k in range(per_system):
        systems = SYSTEMS if k % 2 == 0 else tuple(reversed(SYSTEMS))
        order += [(who, seconds) for who in systems]
    return order


def take_turns(
    cfg: Config,
    children: dict[str, Child],
    schemas: dict[str, str],
    order: list[tuple[str, float]],
) -> tuple[dict[str, Produced], dict[str, dict[str, float]]]:
    """Start ``children`` (one per system, each on its schema), insert into the systems in
    ``order`` and wait for each segment to drain; stop them all. What each was sent, and the
    start time of each run by sequence number."""
    produced = {who: Produced() for who in children}
    with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
        try:
            start_all(list(children.values()))
            time.sleep(1.0)  # listeners connected, first empty claims done
            for who, seconds in order:
                schema = schemas[who]
                produce(conn, schema, cfg.latency_rate, seconds, produced[who])
                wait_until(lambda c=conn, s=schema: not remaining(c, s), timeout=60)
        finally:
            for child in children.values():
                child.stop()
    return produced, {who: child.wait()["starts"] for who, child in children.items()}


def runtime_child(cfg: Config, schema: str, *, poll_only: bool = False) -> Child:
    prefixes = [f"bench.%={cfg.concurrency}"]
    return worker_child(cfg, schema, prefixes, "w3-worker", poll_only=poll_only, record_starts=True)


def w3_notify_and_floor(cfg: Config, report: Report) -> None:
    """The runtime with NOTIFY, and the floor under it: a framework-free LISTEN + claim loop
    (``pickup_proc``) on the same load and statement, blocking, on asyncio and with libpq
    directly, in turns."""
    schemas = {who: migrate_schema(cfg, "w3" if who == "runtime" else "w3b") for who in SYSTEMS}
    with ExitStack() as stack:
        for schema in schemas.values():
            stack.enter_context(dropped_afterwards(cfg.conninfo, schema))
        bare = ["-m", "benchmarks.pickup_proc", "--conninfo", cfg.conninfo, "--schema"]
        children = {
            "runtime": runtime_child(cfg, schemas["runtime"]),
            "bare": Child([*bare, schemas["bare"]], "w3-bare"),
            "bare_async": Child([*bare, schemas["bare_async"], "--async"], "w3-bare-async"),
            "bare_direct": Child([*bare, schemas["bare_direct"], "--direct"], "w3-bare-direct"),
        }
        produced, starts = take_turns(cfg, children, schemas, turns(cfg))
    load = f"{cfg.latency_rate:g}/s for {cfg.latency_seconds:g}s"
    taking_turns = f"{produced['runtime'].segments} turns each, taking turns with the others"
    variants = {
        "runtime": ("workfleet", f"commit->start, {load}, NOTIFY", "w3_notify"),
        "bare": ("bare", f"commit->claimed, {load}, LISTEN + the hot claim, blocking", "w3_bare"),
        "bare_async": (
            "bare",
            f"commit->claimed, {load}, LISTEN + the hot claim, asyncio + uvloop",
            "w3_bare_async",
        ),
        "bare_direct": (
            "bare",
            f"commit->claimed, {load}, LISTEN + the hot claim, asyncio + libpq directly",
            "w3_bare_direct",
        ),
    }
    for who, (system, variant, key) in variants.items():
        latency_figures(
            report,
            ("W3", system),
            f"{variant}, {taking_turns}",
            latencies_ms(produced[who].commits, starts[who]),
            len(produced[who].commits),
            produced[who].round_trips,
            key,
        )


def w3_poll_only(cfg: Config, report: Report) -> None:
    schema = migrate_schema(cfg, "w3p")
    with dropped_afterwards(cfg.conninfo, schema):
        child = runtime_child(cfg, schema, poll_only=True)
        produced, starts = take_turns(
            cfg, {"poll": child}, {"poll": schema}, [("poll", cfg.latency_seconds)]
        )
    latency_figures(
        report,
        ("W3", "workfleet"),
        f"commit->start, {cfg.latency_rate:g}/s for {cfg.latency_seconds:g}s, "
        "poll-only (poll_interval 5 s)",
        latencies_ms(produced["poll"].commits, starts["poll"]),
        len(produced["poll"].commits),
        produced["poll"].round_trips,
        "w3_poll",
    )
