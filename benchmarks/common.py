"""Shared pieces of the benchmark suite: database selection, schemas, child processes, figures.

Clocks: every timestamp the suite compares is wall-clock time on this machine, either
``time.time()`` in a Python process or ``now()`` / ``clock_timestamp()`` in PostgreSQL, which
runs on the same host and reads the same system clock.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".workfleet" / "bench"
NOOP_TYPE = "bench.noop.v1"


def database_url(given: str | None) -> str:
    """``given``, else ``$WORKFLEET_DATABASE_URL`` / ``$DATABASE_URL``, else an embedded server."""
    url = given or os.environ.get("WORKFLEET_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    import pgserver

    return str(pgserver.get_server(str(ROOT / ".workfleet" / "bench-pg")).get_uri())


def conninfo_of(url: str) -> str:
    """libpq conninfo for ``url`` (``?schema=`` and friends removed)."""
    from workfleet.dsn import resolve_dsn

    return resolve_dsn(url).conninfo


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def new_schema_name(tag: str) -> str:
    return f"bench_{tag}_{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def dropped_afterwards(conninfo: str, schema: str) -> Iterator[str]:
    """Yield ``schema``; drop it (CASCADE) afterwards whatever happens."""
    try:
        yield schema
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB from /proc; (0, 0) when the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return rss, hwm


def load_average() -> float:
    return os.getloadavg()[0]


class Child:
    """A benchmark child process speaking a tiny line protocol on stdin/stdout.

    The child prints ``ready`` once set up, waits for ``go`` on stdin, does its work, and
    writes a JSON result to ``out`` before it exits (on its own or after SIGTERM).
    """

    def __init__(self, argv: list[str], name: str, python: str = sys.executable) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.out = STATE / f"{name}-{uuid.uuid4().hex[:6]}.json"
        self.log = STATE / f"{name}.log"
        self._log_fh: IO[bytes] = open(self.log, "wb")  # noqa: SIM115 - closed in wait()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [python, *argv, "--out", str(self.out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_fh,
            cwd=ROOT,
            env=env,
        )
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        if self.proc.stdout is None:
            raise RuntimeError("no pipe to the child")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} exited before it was ready; see {self.log}")
            if line.strip() == b"ready":
                return
        raise RuntimeError(f"{self.name} not ready within {timeout:g}s")

    def go(self) -> None:
        if self.proc.stdin is None:
            raise RuntimeError("no pipe to the child")
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60.0) -> dict[str, Any]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{self.name} did not exit within {timeout:g}s") from None
        finally:
            self._log_fh.close()
        if self.proc.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {tail}")
        try:
            result: dict[str, Any] = json.loads(self.out.read_text())
        finally:
            self.out.unlink(missing_ok=True)
        return result


def start_all(children: Sequence[Child], before_go: Callable[[], None] | None = None) -> None:
    """Wait until every child is ready, call ``before_go()`` (a meter's start, say), then
    release them together."""
    for child in children:
        child.wait_ready()
    if before_go is not None:
        before_go()
    for child in children:
        child.go()


def wait_until(check: Any, timeout: float, interval: float = 0.05) -> None:
    """Call ``check()`` until it returns true; RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not done within {timeout:g}s")
        time.sleep(interval)


class RssSampler:
    """Track the peak VmRSS of some processes; call ``sample()`` while they work."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.peak_kib = dict.fromkeys(self.pids, 0)
        self.hwm_kib = dict.fromkeys(self.pids, 0)

    def sample(self) -> None:
        for pid in self.pids:
            rss, hwm = rss_kib(pid)
            self.peak_kib[pid] = max(self.peak_kib[pid], rss)
            self.hwm_kib[pid] = max(self.hwm_kib[pid], hwm)


@dataclass
class Figure:
    """One measured number."""

    workload: str
    system: str
    variant: str
    value: float
    unit: str
    note: str = ""
    key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        value = f"{figure.value:,.2f}" if figure.value < 100 else f"{figure.value:,.0f}"
        print(
            f"  {figure.workload:<4} {figure.system:<9} {figure.variant:<44} "
            f"{value:>10} {figure.unit}  {figure.note}",
            flush=True,
        )
        return figure

    def get(self, key: str) -> Figure | None:
        for figure in self.figures:
            if figure.key == key:
                return figure
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [f.__dict__ for f in self.figures]
