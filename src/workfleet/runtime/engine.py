"""The engine: a small supervisor of one worker's producers, completer and heartbeater.

It builds one :class:`Producer` per lease loop, shares one :class:`Completer` and one
:class:`Heartbeater` between them, routes wake-ups and cancellations from the listener, and
stops everything in River's two phases: stop claiming and drain for up to ``drain_timeout``;
then stop what still runs and release it. It is storage-agnostic (any :class:`RunQueue`) and
transport-agnostic (the worker's listener calls :meth:`notify_inserted`,
:meth:`notify_cancelled` and :meth:`wake_all`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Sequence
from typing import Any

from workfleet.checkpoints import WorkflowStore
from workfleet.discovery import ExecutorRegistry
from workfleet.observability.logging import Logger
from workfleet.runtime.completer import Completer
from workfleet.runtime.execution import RunSession, Shared
from workfleet.runtime.heartbeat import Heartbeater
from workfleet.runtime.loops import loop_specs
from workfleet.runtime.outcomes import Policy
from workfleet.runtime.producer import Producer
from workfleet.settings import RuntimeSettings
from workfleet.store import Observer, RunQueue

# Run types whose serving loops the engine remembers before it starts over
SERVING_TYPES = 1024


class Engine:
    """Runs the lease loops of one worker process until stopped."""

    def __init__(
        self,
        queue: RunQueue,
        registry: ExecutorRegistry,
        settings: RuntimeSettings,
        observer: Observer,
        log: Logger,
        workflows: WorkflowStore | None = None,
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.log = log
        specs = loop_specs(settings, registry)
        policy = Policy(
            backoff=settings.backoff_policy(),
            cancel_grace=settings.cancel_grace,
            default_timeout=settings.default_timeout,
            worker_id=settings.worker_id,
        )
        self.threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(sum(s.concurrency for s in specs), 1),
            thread_name_prefix="workfleet-exec",
        )
        shared = Shared(
            policy, self.threads, log, workflows, settings.workflow_max_output_bytes, observer
        )
        self.completer = Completer(queue, settings.worker_id, observer, log)
        self.loops = [
            Producer(spec, settings, queue, registry, self.completer, shared, observer)
            for spec in specs
        ]
        self.heartbeater = Heartbeater(
            queue, settings.worker_id, settings.lease_seconds, self.sessions, observer, log
        )
        self._serving: dict[str, tuple[Producer, ...]] = {}  # run type -> loops that serve it
        self.loop_tasks: list[asyncio.Task[None]] = []
        self.side_tasks: list[asyncio.Task[None]] = []
        self.draining = False
        self._stopped = asyncio.Event()
        self._force = asyncio.Event()

    # --- from the listener --------------------------------------------------------------------

    def notify_inserted(self, run_type: str) -> None:
        """Runs of ``run_type`` became runnable: wake the loops that serve it."""
        loops = self._serving.get(run_type)
        if loops is None:
            # remembered per type: this is the first step of every pickup (a notification may
            # name any type, so the memory is bounded)
            if len(self._serving) >= SERVING_TYPES:
                self._serving.clear()
            loops = self._serving[run_type] = tuple(
                loop for loop in self.loops if loop.matches(run_type)
            )
        for loop in loops:
            loop.wake("notify")

    def notify_cancelled(self, run_id: uuid.UUID) -> None:
        """``run_id`` was cancelled: stop its execution if this worker runs it."""
        for loop in self.loops:
            loop.cancelled(run_id)

    def wake_all(self) -> None:
        """Look again everywhere (after a listener reconnect, or an ``a:`` notification)."""
        for loop in self.loops:
            loop.wake("notify")

    # --- state ----------------------------------------------------------------------------------

    def sessions(self) -> list[RunSession]:
        """Every lease this worker holds."""
        return [s for loop in self.loops for s in loop.sessions()]

    async def heartbeat_once(self) -> None:
        """Extend every lease in flight now (the heartbeater does this every interval)."""
        await self.heartbeater.beat()

    def wedged_loops(self) -> list[str]:
        """Loops whose every slot is held by an executor thread that outlived its outcome."""
        return [loop.name for loop in self.loops if loop.wedged]

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run loops, heartbeats and the completer until :meth:`stop` completes a drain."""
        self.side_tasks = [
            asyncio.create_task(self.completer.run(), name="completer"),
            asyncio.create_task(
                self.heartbeater.run(self.settings.heartbeat_interval, self._stopped),
                name="heartbeat",
            ),
        ]
        self.loop_tasks = [
            asyncio.create_task(loop.run(), name=f"loop {loop.name}") for loop in self.loops
        ]
        tasks: Sequence[asyncio.Task[Any]] = [*self.side_tasks, *self.loop_tasks]
        try:
            await self._stopped.wait()
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.threads.shutdown(wait=False, cancel_futures=True)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop claiming, drain the runs in flight, then stop and release what remains.

        Safe before :meth:`run` and safe twice. Outcomes decided meanwhile are written before
        it returns (the completer gives up on them only while the database is unreachable).
        """
        self.draining = True
        timeout = self.settings.drain_timeout if drain_timeout is None else drain_timeout
        for loop in self.loops:
            loop.stop_claiming()
        await asyncio.gather(*self.loop_tasks, return_exceptions=True)
        running = [t for loop in self.loops for t in loop.running]
        if running and not self._force.is_set():
            self.log.info("draining runs in flight", runs=len(running), timeout=timeout)
            drained = asyncio.ensure_future(asyncio.wait(running))
            forced = asyncio.ensure_future(self._force.wait())
            await asyncio.wait(
                {drained, forced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            drained.cancel()
            forced.cancel()
        leftover = sum(loop.undecided for loop in self.loops)
        if leftover:
            self.log.warning("drain timeout reached; cancelling and releasing runs", runs=leftover)
            grace = 0.1 if self._force.is_set() else max(self.settings.cancel_grace, 0.1)
            await asyncio.gather(*(loop.release_rest(grace) for loop in self.loops))
        self.completer.stop()
        await self.completer.wait_idle()
        self.observer.drained()
        self._stopped.set()

    def force(self) -> None:
        """Cut a drain short (a second stop signal): stop and release at once."""
        self._force.set()
