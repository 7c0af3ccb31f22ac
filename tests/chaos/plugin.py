"""The executors the chaos scenarios run: plain work, poison, stuck async, stuck sync, retry.

Every successful execution returns ``{"worker": <worker id>, "attempt": <n>}`` so the invariant
checker can prove that the outcome was written by the process that held the lease.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from workfleet import Plugin, Run, SyncRun
from workfleet.retry import ConstantBackoff

plugin = Plugin("chaos", backoff=ConstantBackoff(0.2))

WORKER_ID = os.environ.get("WORKFLEET_WORKER_ID", f"chaos-{os.getpid()}")
POISON_EXIT_CODE = 137


async def _work(run: Run[Any]) -> dict[str, Any]:
    payload: dict[str, Any] = run.payload if isinstance(run.payload, dict) else {}
    if payload.get("poison"):
        # a run that takes its process down with it (segfaulting extension, OOM kill, ...)
        os._exit(POISON_EXIT_CODE)
    if run.attempt == 1 and payload.get("first_sleep_ms"):
        # tests wait for this line: the run is executing, not merely leased in the table
        run.log.info("chaos: first attempt sleeping")
        await asyncio.sleep(float(payload["first_sleep_ms"]) / 1000)
    await asyncio.sleep(float(payload.get("ms", 5)) / 1000)
    return {"worker": WORKER_ID, "attempt": run.attempt}


@plugin.executor("chaos.a.%")
async def work_a(run: Run[Any]) -> dict[str, Any]:
    """Prefix a: sleep a few milliseconds (poison on request)."""
    return await _work(run)


@plugin.executor("chaos.b.%")
async def work_b(run: Run[Any]) -> dict[str, Any]:
    """Prefix b: sleep a few milliseconds."""
    return await _work(run)


@plugin.executor("chaos.stuck.async.v1", timeout=1.0, max_attempts=2)
async def stuck_async(run: Run[Any]) -> None:
    """Ignores cancellation: swallows every CancelledError and keeps sleeping."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


_never = threading.Event()


@plugin.executor("chaos.stuck.sync.v1", timeout=1.0, max_attempts=2)
def stuck_sync(run: SyncRun[Any]) -> None:
    """Blocks its thread forever: nothing can interrupt it."""
    _never.wait()


@plugin.executor("chaos.retry.v1", backoff=ConstantBackoff(2.0), max_attempts=3)
async def retry_once(run: Run[Any]) -> dict[str, Any]:
    """Fails its first attempt, succeeds on the second (2 s later by the database clock)."""
    if run.attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return {"worker": WORKER_ID, "attempt": run.attempt}
