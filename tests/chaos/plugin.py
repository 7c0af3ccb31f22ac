"""The executors the chaos scenarios run: plain work, poison, stuck async, stuck sync, retry,
and durable workflows whose steps leave side effects behind.

Every successful execution returns ``{"worker": <worker id>, "attempt": <n>}`` so the invariant
checker can prove that the outcome was written by the process that held the lease. Workflow
steps append a line per start to ``CHAOS_EFFECTS_FILE`` (``<run id> <step> <worker id>``): the
side effects a test counts after the fact.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from workfleet import Plugin, Run, SyncRun
from workfleet.retry import ConstantBackoff
from workfleet.workflow import Workflow

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


def _record_effect(run_id: str, step: str) -> None:
    """Append one line; O_APPEND keeps concurrent writers' lines whole, and a SIGKILL cannot
    lose a write that returned (it is in the page cache)."""
    path = os.environ["CHAOS_EFFECTS_FILE"]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{run_id} {step} {WORKER_ID}\n".encode())
    finally:
        os.close(fd)


async def effect_step(run_id: str, step: str, ms: float) -> str:
    """A step with a side effect at its start, then ``ms`` of work."""
    _record_effect(run_id, step)
    await asyncio.sleep(ms / 1000)
    return f"{step}@{WORKER_ID}"


WORKFLOW_STEPS = ("s1", "s2", "s3", "s4", "s5")


@plugin.workflow("chaos.wf.steps.v1")
async def five_steps(wf: Workflow[Any]) -> list[str]:
    """Five sequential steps of ``ms`` milliseconds each (default 150)."""
    payload: dict[str, Any] = wf.payload if isinstance(wf.payload, dict) else {}
    ms = float(payload.get("ms", 150))
    return [await wf.step(s, effect_step, str(wf.id), s, ms) for s in WORKFLOW_STEPS]


@plugin.workflow("chaos.wf.sleep.v1")
async def sleep_between(wf: Workflow[Any]) -> list[str]:
    """A step, a durable sleep of ``sleep`` seconds (default 2), a step."""
    payload: dict[str, Any] = wf.payload if isinstance(wf.payload, dict) else {}
    before = await wf.step("before", effect_step, str(wf.id), "before", 1)
    await wf.sleep(float(payload.get("sleep", 2)))
    after = await wf.step("after", effect_step, str(wf.id), "after", 1)
    return [before, after]
