"""The workloads W1, W2, W5 and W6, and what the others share. See docs/performance.md
(W3 is in ``benchmarks.pickup``, W4 in ``benchmarks.ceiling``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from benchmarks.common import (
    NOOP_TYPE,
    Child,
    Figure,
    Report,
    RssSampler,
    dropped_afterwards,
    new_schema_name,
    rss_kib,
    start_all,
    wait_until,
)
from benchmarks.costs import Costs, Meter, per_run_extra, per_run_note


@dataclass
class Config:
    url: str
    conninfo: str
    runs: int = 50_000
    concurrency: int = 100
    enqueue_single: int = 2_000
    enqueue_batch: int = 100
    latency_rate: float = 50.0
    latency_seconds: float = 10.0
    history: int = 1_000_000
    ceiling_batches: tuple[int, ...] = (1, 10, 100)
    processes: tuple[int, ...] = (1, 2)
    quick: bool = False
    workflows: int = 5_000  # W7: 10-step workflows drained
    signals: int = 300  # W8: workflows waiting, one signal each at latency_rate
    fan_out: int = 1_000  # W9: children of one workflow


def migrate_schema(cfg: Config, tag: str) -> str:
    from workfleet.db.migrate import migrate

    schema = new_schema_name(tag)
    asyncio.run(migrate(cfg.conninfo, schema))
    return schema


def table(schema: str, name: str = "workflow_run") -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def insert_pending(conn: psycopg.Connection[Any], schema: str, n: int) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (type, payload) SELECT %s, jsonb_build_object('seq', g) "
            "FROM generate_series(1, %s) g"
        ).format(table(schema)),
        [NOOP_TYPE, n],
    )
    conn.execute(sql.SQL("ANALYZE {}").format(table(schema)))


NOTIFY_TRIGGER = "workfleet_run_inserted"
CREATED_TRIGGER = "workfleet_run_created"


def set_trigger(
    conn: psycopg.Connection[Any],
    schema: str,
    enabled: bool,
    triggers: tuple[str, ...] = (NOTIFY_TRIGGER, CREATED_TRIGGER),
) -> None:
    verb = sql.SQL("ENABLE" if enabled else "DISABLE")
    for name in triggers:
        conn.execute(
            sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
                table(schema), verb, sql.Identifier(name)
            )
        )


def truncate(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(table(schema)))


# --- W1 enqueue ----------------------------------------------------------------------------------


def w1_single(conn: psycopg.Connection[Any], schema: str, n: int) -> float:
    stmt = sql.SQL("INSERT INTO {} (type, payload) VALUES (%s, %s)").format(table(schema))
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute(stmt, [NOOP_TYPE, Jsonb({"seq": i})], prepare=True)
    return n / (time.perf_counter() - t0)


def w1_submit_many(cfg: Config, schema: str, n: int, batch: int) -> float:
    from workfleet.client import Client
    from workfleet.models import NewRun

    async def go() -> float:
        async with Client.connect(cfg.conninfo, schema=schema) as client:
            await client.submit_many([NewRun(NOOP_TYPE, {"seq": -1})])  # warm the pool
            batches = max(1, n // batch)
            t0 = time.perf_counter()
            for b in range(batches):
                await client.submit_many(
                    [NewRun(NOOP_TYPE, {"seq": b * batch + i}) for i in range(batch)]
                )
            return batches * batch / (time.perf_counter() - t0)

    return asyncio.run(go())


def w1_raw_insert(conn: psycopg.Connection[Any], schema: str, n: int, batch: int) -> float:
    stmt = sql.SQL(
        "INSERT INTO {} (type, payload) SELECT * FROM unnest(%s::text[], %s::jsonb[])"
    ).format(table(schema))
    batches = max(1, n // batch)
    t0 = time.perf_counter()
    for b in range(batches):
        payloads = [json.dumps({"seq": b * batch + i}) for i in range(batch)]
        conn.execute(stmt, [[NOOP_TYPE] * batch, payloads], prepare=True)
    return batches * batch / (time.perf_counter() - t0)


def w1_copy(conn: psycopg.Connection[Any], schema: str, n: int) -> float:
    stmt = sql.SQL("COPY {} (type, payload) FROM STDIN").format(table(schema))
    t0 = time.perf_counter()
    with conn.transaction(), conn.cursor().copy(stmt) as copy:
        for i in range(n):
            copy.write_row((NOOP_TYPE, json.dumps({"seq": i})))
    return n / (time.perf_counter() - t0)


def w1(cfg: Config, report: Report) -> None:
    schema = migrate_schema(cfg, "w1")
    n_batch = cfg.runs
    with (
        dropped_afterwards(cfg.conninfo, schema),
        psycopg.connect(cfg.conninfo, autocommit=True) as conn,
    ):
        b = cfg.enqueue_batch
        modes = (
            ("", "triggers on", ()),
            ("_notrig", "NOTIFY trigger off", (NOTIFY_TRIGGER,)),
            ("_noevents", "NOTIFY + created-event triggers off", (NOTIFY_TRIGGER, CREATED_TRIGGER)),
        )
        for suffix, label, disabled in modes:
            set_trigger(conn, schema, True)
            if disabled:
                set_trigger(conn, schema, False, disabled)
            variants = [
                ("workfleet", "single SQL INSERT, autocommit", "single"),
                ("workfleet", f"Client.submit_many x{b}", "batch"),
                ("raw", f"multi-row INSERT (unnest) x{b}", "raw"),
                ("raw", f"COPY {n_batch:,} rows, one txn", "copy"),
            ]
            for system, variant, kind in variants:
                truncate(conn, schema)
                if kind == "single":
                    value = w1_single(conn, schema, cfg.enqueue_single)
                elif kind == "batch":
                    value = w1_submit_many(cfg, schema, n_batch, b)
                elif kind == "raw":
                    value = w1_raw_insert(conn, schema, n_batch, b)
                else:
                    value = w1_copy(conn, schema, n_batch)
                report.add(
                    Figure(
                        "W1",
                        system,
                        f"{variant} ({label})",
                        value,
                        "runs/s",
                        key=f"w1_{kind}{suffix}",
                    )
                )
        set_trigger(conn, schema, True)


# --- W2 drain / W5 history / W6 memory -----------------------------------------------------------


def worker_child(
    cfg: Config,
    schema: str,
    prefixes: list[str],
    name: str,
    *,
    poll_only: bool = False,
    record_starts: bool = False,
    log_level: str | None = None,
    run_events: str | None = None,
) -> Child:
    argv = ["-m", "benchmarks.worker_proc", "--database-url", cfg.url, "--schema", schema]
    for p in prefixes:
        argv += ["--prefix", p]
    if poll_only:
        argv.append("--poll-only")
    if record_starts:
        argv.append("--record-starts")
    if log_level:
        argv += ["--log-level", log_level]
    if run_events:
        argv += ["--run-events", run_events]
    return Child(argv, name)


def remaining(conn: psycopg.Connection[Any], schema: str) -> bool:
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE status IN ('pending', 'leased'))").format(
            table(schema)
        )
    ).fetchone()
    return bool(row and row[0])


def last_finish(conn: psycopg.Connection[Any], schema: str) -> tuple[float, int]:
    row = conn.execute(
        sql.SQL(
            "SELECT extract(epoch FROM max(updated_at))::float8, count(*) FROM {} "
            "WHERE status = 'succeeded' AND type = %s"
        ).format(table(schema)),
        [NOOP_TYPE],
    ).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("no run finished")
    return float(row[0]), int(row[1])


@dataclass
class DrainResult:
    rate: float
    seconds: float
    done: int
    peak_rss_kib: int
    hwm_kib: int
    cpu_seconds: float = 0.0  # the worker processes' own CPU, start to stop
    costs: Costs = field(default_factory=Costs)  # PostgreSQL's CPU and WAL over the drain

    @property
    def cost_note(self) -> str:
        return per_run_note(self.cpu_seconds, self.costs, self.done)


def drain_workers(
    cfg: Config,
    schema: str,
    processes: int,
    tag: str,
    *,
    log_level: str | None = None,
    run_events: str | None = None,
    profile: Any = None,
) -> DrainResult:
    """Pre-inserted runs in ``schema``, drained by ``processes`` worker processes."""
    prefixes = [f"bench.%={cfg.concurrency}"]
    children = [
        worker_child(
            cfg, schema, prefixes, f"{tag}-worker{i}", log_level=log_level, run_events=run_events
        )
        for i in range(processes)
    ]
    sampler = RssSampler([c.pid for c in children])
    with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
        try:
            for c in children:
                c.wait_ready()
            if profile is not None:
                profile.attach(children[0].pid)
            meter = Meter(conn)
            meter.start()
            for c in children:
                c.go()

            def finished() -> bool:
                sampler.sample()
                return not remaining(conn, schema)

            wait_until(finished, timeout=600, interval=0.1)
            costs = meter.stop()
            end, done = last_finish(conn, schema)
        finally:
            if profile is not None:
                profile.detach()
            for c in children:
                c.stop()
        results = [c.wait() for c in children]
    starts = [r["first_start"] for r in results if r.get("first_start")]
    seconds = end - min(starts)
    return DrainResult(
        done / seconds,
        seconds,
        done,
        max(sampler.peak_kib.values()),
        max(sampler.hwm_kib.values()),
        sum(float(r.get("cpu_seconds", 0.0)) for r in results),
        costs,
    )


def drain_fresh(
    cfg: Config, processes: int, tag: str, runs: int | None = None, **options: Any
) -> DrainResult:
    """A fresh schema with ``runs`` (default ``cfg.runs``) pending no-op runs, drained by
    ``processes`` workers (``options`` go to :func:`drain_workers`), then dropped."""
    schema = migrate_schema(cfg, tag)
    with dropped_afterwards(cfg.conninfo, schema):
        with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
            insert_pending(conn, schema, cfg.runs if runs is None else runs)
        return drain_workers(cfg, schema, processes, f"{tag}-p{processes}", **options)


def w2(cfg: Config, report: Report) -> None:
    for processes in cfg.processes:
        res = drain_fresh(cfg, processes, "w2")
        report.add(
            Figure(
                "W2",
                "workfleet",
                f"drain {cfg.runs:,}, {processes} proc x concurrency {cfg.concurrency}",
                res.rate,
                "runs/s",
                note=f"{res.seconds:.2f}s; {res.cost_note}",
                key=f"w2_p{processes}",
                extra=per_run_extra(res.cpu_seconds, res.costs, res.done),
            )
        )
        report.add(
            Figure(
                "W6",
                "workfleet",
                f"peak RSS during W2 ({processes} proc, per process)",
                max(res.peak_rss_kib, res.hwm_kib) / 1024,
                "MiB",
                note=f"sampled {res.peak_rss_kib / 1024:.1f}, VmHWM {res.hwm_kib / 1024:.1f}",
                key=f"w6_peak_p{processes}",
            )
        )


def w2_events_off(cfg: Config, report: Report) -> None:
    """W2 with WORKFLEET_RUN_EVENTS=failures: prices the leased/started/succeeded events."""
    for processes in cfg.processes:
        res = drain_fresh(cfg, processes, "w2e", run_events="failures")
        report.add(
            Figure(
                "W2",
                "workfleet",
                f"drain, {processes} proc, lifecycle events off (RUN_EVENTS=failures)",
                res.rate,
                "runs/s",
                note=f"{res.seconds:.2f}s; {res.cost_note}",
                key=f"w2_p{processes}_events_off",
            )
        )


def w2_debug_logs(cfg: Config, report: Report) -> None:
    """W2 with one process at log level DEBUG: prices a log line per successful run."""
    res = drain_fresh(cfg, 1, "w2q", log_level="DEBUG")
    report.add(
        Figure(
            "W2",
            "workfleet",
            "drain, 1 proc, log level DEBUG (a line per successful run)",
            res.rate,
            "runs/s",
            note=f"{res.seconds:.2f}s",
            key="w2_p1_debug",
        )
    )


HISTORY_SQL = """
INSERT INTO {table} (type, payload, status, attempt, result, created_at, updated_at, run_at)
SELECT 'bench.history.v' || (g %% 4), jsonb_build_object('seq', g), 'succeeded', 0,
       'null'::jsonb, t, t + interval '1 second', t
FROM generate_series(1, %s) g,
     LATERAL (SELECT now() - interval '6 days' + g * interval '1 millisecond' * 0.4) AS x(t)
"""


def load_history(conn: psycopg.Connection[Any], schema: str, n: int) -> None:
    """``n`` finished runs in ``schema``, settled as a real table's history is: loaded without
    'created' events or NOTIFY, vacuumed, analysed and checkpointed (its dirty pages flushed
    now rather than by a checkpoint that falls into the drain measured next)."""
    set_trigger(conn, schema, False)
    conn.execute(sql.SQL(HISTORY_SQL).format(table=table(schema)), [n])
    set_trigger(conn, schema, True)
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table(schema)))
    checkpoint(conn)


def checkpoint(conn: psycopg.Connection[Any]) -> None:
    """CHECKPOINT, where the role may (a role without the privilege skips it)."""
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


def claim_plan(conn: psycopg.Connection[Any], schema: str, concurrency: int) -> list[str]:
    from workfleet.db.queries import Queries

    query = Queries(schema)["claim"]
    rows = conn.execute(
        sql.SQL("EXPLAIN (COSTS OFF) {}").format(query),
        {
            "limit": concurrency,
            "exact": [],
            "likes": ["bench.%"],
            "worker_id": "explain",
            "lease": 30.0,
            "lifecycle": True,
        },
    ).fetchall()
    return [str(r[0]) for r in rows]


def w5(cfg: Config, report: Report) -> list[str]:
    schema = migrate_schema(cfg, "w5")
    with dropped_afterwards(cfg.conninfo, schema):
        with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
            t0 = time.perf_counter()
            load_history(conn, schema, cfg.history)
            load = time.perf_counter() - t0
            insert_pending(conn, schema, cfg.runs)
            plan = claim_plan(conn, schema, cfg.concurrency)
        res = drain_workers(cfg, schema, 1, "w5")
    report.add(
        Figure(
            "W5",
            "workfleet",
            f"W2 (1 proc) over {cfg.history:,} finished runs",
            res.rate,
            "runs/s",
            note=f"{res.seconds:.2f}s; history loaded in {load:.1f}s; {res.cost_note}",
            key="w5_p1",
        )
    )
    return plan


def w6_idle(cfg: Config, report: Report) -> None:
    schema = migrate_schema(cfg, "w6")
    with dropped_afterwards(cfg.conninfo, schema):
        child = worker_child(cfg, schema, [f"bench.{f}.%" for f in "abcd"], "w6-idle")
        try:
            start_all([child])
            time.sleep(1.0 if cfg.quick else 3.0)
            rss, _ = rss_kib(child.pid)
        finally:
            child.stop()
        child.wait()
    report.add(
        Figure(
            "W6",
            "workfleet",
            "idle RSS, 4 prefixes (default concurrency)",
            rss / 1024,
            "MiB",
            key="w6_idle",
        )
    )


def server_facts(conninfo: str) -> dict[str, Any]:
    names = [
        "server_version",
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "wal_level",
        "max_connections",
        "work_mem",
    ]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        facts: dict[str, Any] = {}
        for name in names:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            facts[name] = row[0] if row else None
    facts["python"] = sys.version.split()[0]
    return facts
