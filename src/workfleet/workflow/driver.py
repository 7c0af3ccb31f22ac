"""Driving one execution of a workflow run: replay, run until done or blocked, suspend.

The driver loads the run's checkpoints, calls the workflow function with a
:class:`~workfleet.workflow.Workflow`, and watches it. When the function returns or raises, so
does the driver (the execution turns that into the run's outcome as for any executor). When
every branch of the function waits (a durable sleep, a signal, children, a step's retry) and no
step runs, the driver cancels the function and suspends the run under its lock: if what it
waits for already happened, nothing is written and the function is replayed at once in this
execution; otherwise the run is pending until its wake-up and the driver raises
:class:`~workfleet.models.Suspended`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from workfleet.checkpoints import LeaseLostError, SuspendResult
from workfleet.models import Suspended
from workfleet.workflow.context import Workflow
from workfleet.workflow.history import History
from workfleet.workflow.session import WorkflowSession

WorkflowFn = Callable[[Workflow[Any]], Awaitable[Any]]

# Replays in one execution after a suspend found its wait already met. Each is progress (a
# signal to take, children to gather); the bound only stops a workflow that waits in a loop on
# something that is always there from holding its slot forever.
MAX_READY_REPLAYS = 100


class WorkflowDriver:
    """Runs ``fn`` for one execution of a workflow run (see the module docstring)."""

    def __init__(
        self, fn: WorkflowFn, wf: Workflow[Any], session: WorkflowSession, drain_seconds: float
    ) -> None:
        self.fn = fn
        self.wf = wf
        self.session = session
        self.drain_seconds = drain_seconds
        self.replays = 0

    async def run(self) -> Any:
        """The function's return value; its exception; or :class:`Suspended`."""
        s = self.session
        while True:
            s.reset(History(await s.store.load_steps(s.run_id)))
            main = asyncio.ensure_future(self.fn(self.wf))
            try:
                blocked = await self._until_blocked(main)
            except BaseException:
                s.close()
                main.cancel()
                # nobody awaits it any more: whatever it ends with is seen, never "lost"
                main.add_done_callback(_retrieve)
                raise
            if not blocked:
                await self._drain()
                if s.fatal is not None:
                    _retrieve(main)
                    raise s.fatal
                return main.result()
            suspension = s.suspension()
            s.close()
            main.cancel()
            await asyncio.wait({main})
            _retrieve(main)
            if s.fatal is not None:
                raise s.fatal
            result = await s.store.suspend(s.worker_id, s.lease, suspension)
            if result is SuspendResult.SUSPENDED:
                if s.observer is not None:
                    s.observer.workflow_suspended(s.run_type, suspension.kind)
                raise Suspended(suspension.wake_at, suspension.kind)
            if result is SuspendResult.LOST:
                s.lost(None)
                raise LeaseLostError(s.run_id)
            self.replays += 1
            if self.replays > MAX_READY_REPLAYS:
                raise RuntimeError(
                    f"the workflow found its wait met {MAX_READY_REPLAYS} times in a row without "
                    "finishing it: does it wait in a loop?"
                )

    async def _until_blocked(self, main: asyncio.Future[Any]) -> bool:
        """False when ``main`` is done; True when every branch waits and no step runs."""
        s = self.session
        while not main.done():
            if s.blocked:
                # give sibling branches a few loop turns: one may be about to start a step
                for _ in range(3):
                    await asyncio.sleep(0)
                if not main.done() and s.blocked:
                    return True
                continue
            changed = s.watch()

            def wake(_: object, changed: asyncio.Future[None] = changed) -> None:
                if not changed.done():
                    changed.set_result(None)

            main.add_done_callback(wake)
            try:
                await changed
            finally:
                main.remove_done_callback(wake)
        return False

    async def _drain(self) -> None:
        """The function is done; let steps still running in orphaned branches write their
        checkpoints (bounded), so their work is not lost."""
        s = self.session
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_seconds
        while s.in_flight > 0 and loop.time() < deadline:
            changed = s.watch()
            timer = loop.call_later(max(deadline - loop.time(), 0.0), _resolve, changed)
            try:
                await changed
            finally:
                timer.cancel()
        s.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a finished task's exception as seen (its outcome is decided elsewhere)."""
    if task.done() and not task.cancelled():
        task.exception()
