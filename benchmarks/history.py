"""W5 in pairs: does a table holding 1,000,000 finished runs slow the drain, and is the
difference the runtime's or the rows'?

W5 in ``make bench`` is one drain over the history, compared with one W2 drain made minutes
earlier; on a shared two-core machine two such drains differ by more than the 10 % W5 is held
to. This runs the comparison in interleaved pairs instead: for each round, the framework-free
loop with the audit events (``ceiling_proc --events``, W4's) and the runtime (one worker
process, as W2) each drain 50,000 runs on a fresh schema and on one loaded with the history
as W5 loads it, every schema checkpointed before its drain. It prints every drain, then the
median ratio history ÷ fresh of each.

    python -m benchmarks.history [--rounds 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable

import psycopg

from benchmarks.ceiling import bare_drain
from benchmarks.common import conninfo_of, database_url, dropped_afterwards
from benchmarks.workloads import (
    Config,
    checkpoint,
    drain_workers,
    insert_pending,
    load_history,
    migrate_schema,
)


def prepare(cfg: Config, history: bool) -> str:
    """A schema with ``cfg.runs`` pending runs, over ``cfg.history`` finished ones if asked;
    checkpointed either way, so both sides of a pair start from the same clean state."""
    schema = migrate_schema(cfg, "w5h" if history else "w5f")
    with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
        if history:
            load_history(conn, schema, cfg.history)
        else:
            checkpoint(conn)
        insert_pending(conn, schema, cfg.runs)
    return schema


def bare(cfg: Config, schema: str) -> tuple[float, str]:
    """(runs/s, costs) of the framework-free loop with the audit events, k = 100 (W4's)."""
    rate, _, note, _ = bare_drain(cfg, schema, 1, cfg.concurrency, events=True)
    return rate, note


def runtime(cfg: Config, schema: str) -> tuple[float, str]:
    """(runs/s, costs) of one worker process at defaults, as W2."""
    res = drain_workers(cfg, schema, 1, "history")
    return res.rate, res.cost_note


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--database-url", help="PostgreSQL URL (default: environment, else embedded)")
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args(argv)
    url = database_url(args.database_url)
    cfg = Config(url=url, conninfo=conninfo_of(url))
    drains: dict[str, Callable[[Config, str], tuple[float, str]]] = {
        "bare loop": bare,
        "runtime": runtime,
    }
    ratios: dict[str, list[float]] = {name: [] for name in drains}
    for rnd in range(1, args.rounds + 1):
        for name, drain in drains.items():
            rates = []
            for history in (False, True):
                schema = prepare(cfg, history)
                with dropped_afterwards(cfg.conninfo, schema):
                    rate, note = drain(cfg, schema)
                rates.append(rate)
                where = f"over {cfg.history:,}" if history else "fresh"
                print(f"round {rnd}  {name:<9} {where:<15} {rate:>8,.0f} runs/s  {note}")
            ratios[name].append(rates[1] / rates[0])
            print(f"round {rnd}  {name:<9} history / fresh {rates[1] / rates[0]:.2f}", flush=True)
    for name, values in ratios.items():
        spread = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name}: median history / fresh {statistics.median(values):.2f} ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
