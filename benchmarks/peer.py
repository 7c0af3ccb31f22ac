"""The peer: pgqueuer, installed into its own virtualenv and driven through ``pgq_proc``.

The virtualenv lives under ``.workfleet/bench/venv-pgqueuer`` (ignored by git) and is created
on first use with ``python -m venv`` + ``pip install pgqueuer asyncpg``; the project's own
virtualenv is never touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.common import (
    ROOT,
    STATE,
    Child,
    Figure,
    Report,
    RssSampler,
    dropped_afterwards,
    new_schema_name,
    start_all,
    wait_until,
)
from benchmarks.costs import Meter, per_run_extra, per_run_note
from benchmarks.pickup import latencies_ms, latency_figures
from benchmarks.workloads import Config

VENV = STATE / "venv-pgqueuer"
PYTHON = VENV / "bin" / "python"
PACKAGES = ["pgqueuer", "asyncpg"]
PGQ_DEFAULTS = (
    "pgqueuer defaults: PgQueuer.run(batch_size=10, dequeue_timeout=30s, "
    "max_concurrent_tasks=None, heartbeat_timeout=30s), durability=durable, asyncpg driver"
)


def ensure_venv() -> str:
    """Create the pgqueuer virtualenv if needed; return pgqueuer's version."""
    if not PYTHON.exists():
        print(f"  creating {VENV.relative_to(ROOT)} (pip install {' '.join(PACKAGES)})")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", *PACKAGES],
            check=True,
        )
    out = subprocess.run(
        [str(PYTHON), "-c", "import pgqueuer; print(pgqueuer.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def asyncpg_kwargs(conninfo: str) -> str:
    """``asyncpg.connect`` keyword arguments for a libpq conninfo."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    mapping = {"host": "host", "port": "port", "user": "user", "password": "password"}
    kwargs: dict[str, Any] = {v: params[k] for k, v in mapping.items() if params.get(k)}
    if params.get("dbname"):
        kwargs["database"] = params["dbname"]
    if "port" in kwargs:
        kwargs["port"] = int(kwargs["port"])
    return json.dumps(kwargs)


class Pgq:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.connect = asyncpg_kwargs(cfg.conninfo)

    def argv(self, mode: str, schema: str, *extra: str) -> list[str]:
        return ["-m", "benchmarks.pgq_proc", mode, "--connect", self.connect, "--schema", schema]

    def run(self, mode: str, schema: str, *extra: str) -> dict[str, Any]:
        out = subprocess.run(
            [str(PYTHON), *self.argv(mode, schema), *extra],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        return result

    def install(self) -> str:
        schema = new_schema_name("pgq")
        self.run("install", schema)
        return schema

    def worker(self, schema: str, batch: int, name: str, record: bool = False) -> Child:
        extra = ["--batch", str(batch)] + (["--record-starts"] if record else [])
        return Child([*self.argv("worker", schema), *extra], name, python=str(PYTHON))


def queue_empty(conn: psycopg.Connection[Any], schema: str) -> bool:
    row = conn.execute(
        sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {}.pgqueuer)").format(sql.Identifier(schema))
    ).fetchone()
    return bool(row and row[0])


def last_success(conn: psycopg.Connection[Any], schema: str) -> tuple[float, int]:
    row = conn.execute(
        sql.SQL(
            "SELECT extract(epoch FROM max(created))::float8, count(*) FROM {}.pgqueuer_log "
            "WHERE status = 'successful'"
        ).format(sql.Identifier(schema))
    ).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("no run finished")
    return float(row[0]), int(row[1])


def peer_w1(cfg: Config, pgq: Pgq, report: Report) -> None:
    schema = pgq.install()
    with dropped_afterwards(cfg.conninfo, schema):
        res = pgq.run(
            "enqueue",
            schema,
            "--single-runs",
            str(cfg.enqueue_single),
            "--runs",
            str(cfg.runs),
            "--batch",
            str(cfg.enqueue_batch),
        )
    report.add(
        Figure(
            "W1", "pgqueuer", "single Queries.enqueue", res["single"], "runs/s", key="p_w1_single"
        )
    )
    report.add(
        Figure(
            "W1",
            "pgqueuer",
            f"Queries.enqueue batch x{cfg.enqueue_batch}",
            res["batch"],
            "runs/s",
            key="p_w1_batch",
        )
    )


def peer_w2(cfg: Config, pgq: Pgq, report: Report, batches: tuple[int, ...]) -> None:
    for processes in cfg.processes:
        for batch in batches:
            schema = pgq.install()
            with (
                dropped_afterwards(cfg.conninfo, schema),
                psycopg.connect(cfg.conninfo, autocommit=True) as conn,
            ):
                pgq.run("fill", schema, "--runs", str(cfg.runs))
                conn.execute(sql.SQL("ANALYZE {}.pgqueuer").format(sql.Identifier(schema)))
                children = [
                    pgq.worker(schema, batch, f"pgq-w2-b{batch}-{i}") for i in range(processes)
                ]
                sampler = RssSampler([c.pid for c in children])
                try:
                    meter = Meter(conn)
                    start_all(children, meter.start)

                    def finished(
                        conn: psycopg.Connection[Any] = conn,
                        s: str = schema,
                        sampler: RssSampler = sampler,
                    ) -> bool:
                        sampler.sample()
                        return queue_empty(conn, s)

                    wait_until(finished, timeout=600, interval=0.1)
                    costs = meter.stop()
                    time.sleep(0.2)
                    end, done = last_success(conn, schema)
                finally:
                    for c in children:
                        c.stop()
                results = [c.wait() for c in children]
            start = min(r["first_start"] for r in results if r.get("first_start"))
            seconds = end - start
            peak = max(sampler.peak_kib.values()) / 1024
            worker_cpu = sum(float(r.get("cpu_seconds", 0.0)) for r in results)
            report.add(
                Figure(
                    "W2",
                    "pgqueuer",
                    f"drain {cfg.runs:,}, {processes} proc, batch_size={batch}",
                    done / seconds,
                    "runs/s",
                    note=f"{seconds:.2f}s; peak RSS {peak:.0f} MiB; "
                    f"{per_run_note(worker_cpu, costs, done)}",
                    key=f"p_w2_b{batch}_p{processes}",
                    extra=per_run_extra(worker_cpu, costs, done),
                )
            )


def peer_w3(cfg: Config, pgq: Pgq, report: Report) -> None:
    schema = pgq.install()
    with (
        dropped_afterwards(cfg.conninfo, schema),
        psycopg.connect(cfg.conninfo, autocommit=True) as conn,
    ):
        child = pgq.worker(schema, 10, "pgq-w3", record=True)
        try:
            start_all([child])
            time.sleep(1.0)
            res = pgq.run(
                "produce",
                schema,
                "--rate",
                str(cfg.latency_rate),
                "--seconds",
                str(cfg.latency_seconds),
            )
            wait_until(lambda: queue_empty(conn, schema), timeout=60)
        finally:
            child.stop()
        result = child.wait()
    commits = {int(k): float(v) for k, v in res["commits"].items()}
    latency_figures(
        report,
        ("W3", "pgqueuer"),
        f"enqueue->start, {cfg.latency_rate:g}/s for {cfg.latency_seconds:g}s, NOTIFY",
        latencies_ms(commits, result["starts"]),
        len(commits),
        res["round_trips"],
        "p_w3_notify",
    )
