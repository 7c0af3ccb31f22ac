"""The runtime engine: lease loops, executions in flight, heartbeats, completion and drain.

It is storage-agnostic (any :class:`RunStore`) and transport-agnostic: wake-ups and
cancellations arrive through :meth:`Engine.notify_inserted` / :meth:`Engine.notify_cancelled`,
called by the worker's listener. Shutdown has two phases, as in River: stop fetching, then —
after ``drain_timeout`` — cancel what still runs and hand its leases back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from workfleet.errors import StoreError
from workfleet.models import ClaimedRun, Outcome
from workfleet.patterns import TypePattern, claim_filter
from workfleet.plugins import ExecutorRegistry
from workfleet.runtime.completer import Completer
from workfleet.runtime.executor import Execution, ExecutionPolicy
from workfleet.runtime.observer import Observer
from workfleet.runtime.producer import LeaseLoop
from workfleet.store import ClaimFilter, RunStore


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """One lease loop: a type pattern and its concurrency."""

    pattern: TypePattern
    concurrency: int


@dataclass(frozen=True, slots=True)
class EngineConfig:
    worker_id: str
    loops: Sequence[LoopConfig]
    lease_seconds: float = 30.0
    heartbeat_interval: float = 10.0
    poll_interval: float = 5.0
    fetch_cooldown: float = 0.01
    drain_timeout: float = 30.0
    cancel_grace: float = 5.0


class _Handle:
    """Lets a run extend its own lease (``run.heartbeat``)."""

    def __init__(self, engine: Engine, execution: Execution) -> None:
        self.engine = engine
        self.execution = execution

    async def extend(self, seconds: float) -> bool:
        result = await self.engine.store.extend_lease(
            self.engine.config.worker_id, self.execution.lease, seconds
        )
        if not result.held:
            self.engine.lost(self.execution, result.status)
        return result.held


class Engine:
    """Runs the lease loops of one worker process until stopped."""

    def __init__(
        self,
        store: RunStore,
        registry: ExecutorRegistry,
        config: EngineConfig,
        observer: Observer,
        log: Any,
        policy: ExecutionPolicy | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.config = config
        self.observer = observer
        self.log = log
        self.policy = policy or ExecutionPolicy(cancel_grace=config.cancel_grace)
        self.completer = Completer(store, config.worker_id, log)
        self.in_flight: dict[uuid.UUID, tuple[Execution, LeaseLoop]] = {}
        total = sum(lc.concurrency for lc in config.loops)
        self.threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(total, 1), thread_name_prefix="workfleet-exec"
        )
        self.loops = [self._make_loop(lc) for lc in config.loops]
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()
        self._force = asyncio.Event()
        self.loop_tasks: list[asyncio.Task[None]] = []
        self.side_tasks: list[asyncio.Task[None]] = []
        self.draining = False
        # per loop: executor threads still running after their outcome was decided
        self.abandoned_threads: dict[str, int] = {}

    def _make_loop(self, lc: LoopConfig) -> LeaseLoop:
        exact, likes = claim_filter(lc.pattern, self.registry.patterns)
        patterns = [TypePattern.parse(e) for e in exact] + [
            p for p in self.registry.patterns if lc.pattern.intersect(p) is not None
        ]
        return LeaseLoop(
            name=str(lc.pattern),
            patterns=[p for p in (lc.pattern.intersect(q) for q in patterns) if p is not None],
            filt=ClaimFilter(tuple(exact), tuple(likes)),
            concurrency=lc.concurrency,
            store=self.store,
            worker_id=self.config.worker_id,
            lease_seconds=self.config.lease_seconds,
            poll_interval=self.config.poll_interval,
            fetch_cooldown=self.config.fetch_cooldown,
            start_run=self._start_run,
            observer=self.observer,
            log=self.log,
        )

    # --- wake-ups and cancellations from the listener --------------------------------------

    def notify_inserted(self, run_type: str) -> None:
        for loop in self.loops:
            if loop.matches(run_type):
                loop.wake("notify")

    def notify_cancelled(self, run_id: uuid.UUID) -> None:
        entry = self.in_flight.get(run_id)
        if entry is not None:
            execution, _ = entry
            execution.log.info("run cancelled while running; stopping it")
            execution.request_stop("cancelled")

    def wake_all(self) -> None:
        """After a listener reconnect notifications may have been missed: look again."""
        for loop in self.loops:
            loop.wake("notify")

    def lost(self, execution: Execution, status: Any) -> None:
        """The lease is gone: cancelled by a user, or reclaimed after expiry."""
        if execution.stop_reason is not None or execution.decision is not None:
            # already stopping, or already decided: the fenced outcome write settles it
            return
        if status == "cancelled":
            execution.log.info("run cancelled while running; stopping it")
            execution.request_stop("cancelled")
        else:
            execution.log.warning(
                "lease lost; stopping the run without writing its outcome",
                status=None if status is None else str(status),
            )
            _, loop = self.in_flight.get(execution.id, (None, None))
            if loop is not None:
                self.observer.lease_lost(loop.name)
            execution.request_stop("lease_lost", grace=0.0)

    # --- executing ------------------------------------------------------------------------------

    def _start_run(self, claimed: ClaimedRun, loop: LeaseLoop) -> None:
        spec = self.registry.resolve(claimed.type)
        execution = Execution(claimed, spec, self.policy, self.log, self.threads)
        execution.handle = _Handle(self, execution)
        self.in_flight[claimed.id] = (execution, loop)
        self.observer.run_started(loop.name, claimed.type, claimed.queue_wait.total_seconds())
        task = asyncio.create_task(self._execute(execution, loop), name=f"run-{claimed.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, execution: Execution, loop: LeaseLoop) -> None:
        # This task's own context: any structlog logger the executor uses carries the run
        claimed = execution.claimed
        structlog.contextvars.bind_contextvars(
            run_id=str(claimed.id),
            type=claimed.type,
            attempt=claimed.attempt + 1,
            worker_id=self.config.worker_id,
        )
        outcome = Outcome.FAILED
        slot_freed = False
        try:
            decision = await execution.execute()
            execution.decision = decision
            outcome = decision.outcome
            completion = decision.completion
            if not execution.thread_running:
                # free the slot as soon as the executor is done, before the write is flushed;
                # the loop bounds how many such writes may be outstanding
                loop.slot_freed(awaiting_write=completion is not None)
                slot_freed = True
            if completion is not None:
                try:
                    applied = await self.completer.submit(completion)
                finally:
                    if slot_freed:
                        loop.write_done()
                if applied and completion.delay is not None:
                    # back to pending in the future: this loop wakes exactly when it is due
                    asyncio.get_running_loop().call_later(
                        max(completion.delay, 0.0), loop.wake, "retry"
                    )
                if not applied and execution.stop_reason is None:
                    outcome = Outcome.LEASE_LOST
                    execution.log.warning("outcome not written: the lease was lost")
                    self.observer.lease_lost(loop.name)
            self._log_outcome(execution, outcome)
        finally:
            self.in_flight.pop(execution.id, None)
            self.observer.run_finished(
                loop.name, execution.claimed.type, outcome, time.monotonic() - execution.started
            )
            if not slot_freed:
                if execution.thread_running:
                    # a sync executor ignored its timeout or cancellation: its slot stays
                    # taken until the thread really ends, so concurrency is never exceeded
                    execution.log.warning(
                        "executor thread still running after its outcome", outcome=str(outcome)
                    )
                    self._free_when_thread_ends(execution, loop)
                else:
                    loop.slot_freed()

    def _free_when_thread_ends(self, execution: Execution, loop: LeaseLoop) -> None:
        aio_loop = asyncio.get_running_loop()
        self.abandoned_threads[loop.name] = self.abandoned_threads.get(loop.name, 0) + 1

        def freed() -> None:
            self.abandoned_threads[loop.name] -= 1
            loop.slot_freed()

        def done() -> None:
            aio_loop.call_soon_threadsafe(freed)

        execution.on_thread_done(done)

    def wedged_loops(self) -> list[str]:
        """Loops whose every slot is held by an executor thread that outlived its outcome."""
        return [
            lp.name for lp in self.loops if self.abandoned_threads.get(lp.name, 0) >= lp.concurrency
        ]

    def _log_outcome(self, execution: Execution, outcome: Outcome) -> None:
        # called inside the run's task: the log context (bound in _execute) names the run.
        # Successes are DEBUG: at thousands of runs per second an INFO line each is a log bill
        # (and about a tenth of the worker's CPU); metrics and the audit trail count them.
        seconds = round(time.monotonic() - execution.started, 3)
        if outcome is Outcome.SUCCEEDED:
            self.log.debug("run succeeded", seconds=seconds)
        elif outcome in (Outcome.SNOOZED, Outcome.RELEASED, Outcome.CANCELLED):
            self.log.info(f"run {outcome}", seconds=seconds)
        else:
            self.log.warning(f"run {outcome}", seconds=seconds)

    # --- heartbeats -------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = self.config.heartbeat_interval
        while not self._stopped.is_set():
            try:
                await asyncio.wait_for(self._stopped.wait(), interval)
                return
            except TimeoutError:
                pass
            await self.heartbeat_once()

    async def heartbeat_once(self) -> None:
        """Extend every lease in flight in one statement; stop runs whose lease is gone."""
        executions = [e for e, _ in self.in_flight.values()]
        if not executions:
            return
        try:
            results = await self.store.heartbeat_many(
                self.config.worker_id, [e.lease for e in executions], self.config.lease_seconds
            )
        except StoreError as exc:
            self.log.warning("heartbeat failed", error=str(exc), runs=len(executions))
            return
        self.observer.heartbeat(len(executions))
        by_id = {e.id: e for e in executions}
        for result in results:
            execution = by_id.get(result.run_id)
            if not result.held and execution is not None and execution.id in self.in_flight:
                self.lost(execution, None if result.status is None else str(result.status))

    # --- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run loops, heartbeats and the completer until :meth:`stop` completes a drain."""
        side = [
            asyncio.create_task(self.completer.run(), name="completer"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        ]
        loop_tasks = [asyncio.create_task(lp.run(), name=f"loop {lp.name}") for lp in self.loops]
        self.loop_tasks = loop_tasks
        self.side_tasks = side
        try:
            await self._stopped.wait()
        finally:
            for t in side + loop_tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*side, *loop_tasks, return_exceptions=True)
            self.threads.shutdown(wait=False, cancel_futures=True)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop fetching, drain in-flight runs, then cancel and release what remains."""
        self.draining = True
        timeout = self.config.drain_timeout if drain_timeout is None else drain_timeout
        for loop in self.loops:
            loop.stop()
        await asyncio.gather(*self.loop_tasks, return_exceptions=True)
        pending = list(self._tasks)
        if pending and not self._force.is_set():
            self.log.info("draining runs in flight", runs=len(pending), timeout=timeout)
            drained = asyncio.ensure_future(asyncio.wait(pending))
            forced = asyncio.ensure_future(self._force.wait())
            await asyncio.wait(
                {drained, forced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            drained.cancel()
            forced.cancel()
        leftover = [e for e, _ in self.in_flight.values() if e.decision is None]
        if leftover:
            self.log.warning(
                "drain timeout reached; cancelling and releasing runs", runs=len(leftover)
            )
            for execution in leftover:
                execution.request_stop("shutdown", grace=0.0)
            grace = 0.1 if self._force.is_set() else max(self.config.cancel_grace, 0.1)
            await asyncio.wait(list(self._tasks), timeout=grace)
            # runs that ended with an outcome keep it (the completer writes it); the others
            # go back to pending for another worker, without consuming an attempt
            await self._release(
                [
                    e
                    for e in leftover
                    if e.decision is None or e.decision.outcome is Outcome.RELEASED
                ]
            )
        self.completer.stop()
        await self.completer.wait_idle()
        self.observer.drained()
        self._stopped.set()

    def force(self) -> None:
        """Cut a drain short (a second stop signal): cancel and release at once."""
        self._force.set()

    async def _release(self, executions: Sequence[Execution]) -> None:
        leases = [e.lease for e in executions]
        try:
            released = await self.store.release_many(self.config.worker_id, leases)
        except StoreError as exc:
            self.log.error(
                "could not release leases; they will expire and be retried",
                error=str(exc),
                runs=len(leases),
            )
            return
        self.log.info("released leases", runs=len(released))
