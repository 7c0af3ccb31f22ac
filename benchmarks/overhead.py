"""The runtime's own CPU per run, without a database.

The engine (lease loop, executions, completer, heartbeater) and the worker's metrics run no-op
runs over a queue that answers at once: claims come back as the claim statement's rows would
(tuples, converted by the store's own ``claimed_runs``) and outcome batches are rendered by the
store's own ``completions_json``, so what is measured is everything the worker does per run but
the driver and the database. The garbage collector is set up as the worker sets it up
(``gc.freeze()`` and its young-generation threshold).

    python -m benchmarks.overhead [--runs 100000] [--rounds 5]

Prints CPU microseconds per run (``time.process_time``) and runs/s for each round; compare
rounds of one invocation, or interleave invocations of two checkouts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from collections.abc import Sequence
from typing import Any

import uvloop
from prometheus_client import CollectorRegistry

from workfleet import Plugin
from workfleet.db.queue import claimed_runs, completions_json
from workfleet.discovery import ExecutorRegistry
from workfleet.models import ClaimedRun, Completion
from workfleet.observability.logging import configure_logging, get_logger
from workfleet.observability.metrics import Metrics
from workfleet.observability.observers import FanOut, NullObserver
from workfleet.runtime.engine import Engine
from workfleet.runtime.worker import GC_YOUNG_THRESHOLD
from workfleet.settings import RuntimeSettings
from workfleet.store import ClaimFilter

plugin = Plugin("overhead")
NOW_US = int(time.time() * 1_000_000)


@plugin.executor("bench.noop.v1")
async def noop(run: Any) -> None:
    return None


class InstantQueue:
    """A :class:`~workfleet.store.RunQueue` that answers at once, ``total`` runs in all."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.total = total
        self.done = 0
        self.finished = asyncio.Event()

    async def claim(
        self,
        worker_id: str,
        filt: ClaimFilter,
        limit: int,
        lease_seconds: float,
        *,
        waits: bool = True,
    ) -> list[ClaimedRun]:
        await asyncio.sleep(0)  # a claim is an await on a connection
        k = min(limit, self.left)
        self.left -= k
        row = ("bench.noop.v1", '{"seq": 1}', 0, 5, 0, NOW_US, NOW_US, NOW_US, 0)
        return claimed_runs([(uuid.uuid4(), *row) for _ in range(k)])

    def claim_now(self, *args: Any, **kwargs: Any) -> None:
        return None  # nothing notifies here: every claim is the loop's own

    async def next_due(self, filt: ClaimFilter) -> float | None:
        return None

    async def complete_many(
        self, worker_id: str, completions: Sequence[Completion]
    ) -> set[uuid.UUID]:
        await asyncio.sleep(0)
        completions_json(completions)
        self.done += len(completions)
        if self.done >= self.total:
            self.finished.set()
        return {c.lease.run_id for c in completions}

    async def heartbeat_many(self, *args: Any) -> list[Any]:
        return []


async def one_round(runs: int) -> tuple[float, float]:
    """(CPU µs per run, runs/s) for ``runs`` no-op runs at concurrency 100."""
    queue = InstantQueue(runs)
    settings = RuntimeSettings(
        worker_id="overhead", prefixes=["bench.%=100"], poll_interval=3600, fetch_cooldown=0
    )
    observer = FanOut([Metrics(CollectorRegistry(), "overhead"), NullObserver()])
    engine = Engine(
        queue,  # type: ignore[arg-type]
        ExecutorRegistry.from_plugins([plugin]),
        settings,
        observer,
        get_logger(worker_id="overhead"),
    )
    cpu, wall = time.process_time(), time.perf_counter()
    task = asyncio.create_task(engine.run())
    await queue.finished.wait()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await engine.stop(1)
    await task
    return cpu / runs * 1e6, runs / wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    configure_logging("json", "INFO")
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
    for i in range(args.rounds):
        per_run, rate = uvloop.run(one_round(args.runs))
        print(f"round {i + 1}: {per_run:.2f} µs CPU per run ({rate:,.0f} runs/s)", flush=True)


if __name__ == "__main__":
    main()
