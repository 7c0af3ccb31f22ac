"""What a drain costs beside its wall time: PostgreSQL's CPU and the WAL it wrote.

- PostgreSQL CPU comes from ``/proc``: the user and system time of every process named
  ``postgres`` (backends, writers, the WAL writer), plus the children's time the postmaster
  collected from backends that exited meanwhile. It needs the server on this machine (else
  "not measured") and a quiet one: other databases' work counts too.
- WAL bytes are ``pg_current_wal_lsn()`` after minus before (needs no privilege).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psycopg

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used so far by this machine's PostgreSQL processes; None when none runs
    here (a remote server) or /proc cannot be read."""
    total = 0
    found = False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:  # the process ended meanwhile
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        if name != "postgres" and not name.startswith("postgres:"):
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # utime, stime, cutime, cstime are fields 14-17 of stat (11-14 after the name)
        total += sum(int(v) for v in fields[11:15])
        found = True
    return total / _TICKS if found else None


def wal_lsn(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else 0


@dataclass
class Costs:
    """Server CPU seconds (None: not measured) and WAL bytes over one measured stretch."""

    pg_cpu_seconds: float | None = None
    wal_bytes: int = 0


class Meter:
    """Read the server's CPU and WAL position at :meth:`start` and again at :meth:`stop`."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._cpu: float | None = None
        self._lsn = 0

    def start(self) -> None:
        self._cpu = postgres_cpu_seconds()
        self._lsn = wal_lsn(self.conn)

    def stop(self) -> Costs:
        cpu = postgres_cpu_seconds()
        used = None if cpu is None or self._cpu is None else cpu - self._cpu
        return Costs(used, wal_lsn(self.conn) - self._lsn)


def per_run_note(worker_cpu: float, costs: Costs, runs: int) -> str:
    """``CPU/run worker 61 µs, PG 80 µs; WAL 2,610 B/run`` for a figure's note."""
    if runs <= 0:
        return ""
    pg = "n/a" if costs.pg_cpu_seconds is None else f"{costs.pg_cpu_seconds / runs * 1e6:.0f} µs"
    return (
        f"CPU/run worker {worker_cpu / runs * 1e6:.0f} µs, PG {pg}; "
        f"WAL {costs.wal_bytes / runs:,.0f} B/run"
    )


def per_run_extra(worker_cpu: float, costs: Costs, runs: int) -> dict[str, float | None]:
    """The same figures as :func:`per_run_note`, as numbers for a figure's ``extra`` (the
    targets read them): microseconds of CPU per run (worker, PostgreSQL) and WAL bytes."""
    if runs <= 0:
        return {}
    pg = None if costs.pg_cpu_seconds is None else costs.pg_cpu_seconds / runs * 1e6
    return {
        "worker_cpu_us_per_run": worker_cpu / runs * 1e6,
        "pg_cpu_us_per_run": pg,
        "wal_bytes_per_run": costs.wal_bytes / runs,
    }
