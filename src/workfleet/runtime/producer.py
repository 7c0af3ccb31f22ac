"""The producer (lease loop) of one type prefix: it owns its slots, its executions and their
outcomes, from claim to written outcome.

It claims only as many runs as it has free slots, waking on a (paced) NOTIFY for one of its
types, on a freed slot after a full batch, on a jittered poll, and at the time the next future
run of its types becomes due — whichever comes first.

Workflows whose wait reaches its deadline (a durable sleep, a signal timeout, a step retry's
backoff) are claimed by a costlier statement (a second index probe, and twice the planning), so
the hot claim leaves them out and the loop takes them only when one can be due: at start, on a
poll, when the next due time it read has come, when a workflow this loop ran suspends until
then, and at least every :data:`WAITS_EVERY` seconds while claims fill every slot. A signal or a
finished child makes its workflow ready at once (and notifies), so the hot claim takes it.

A NOTIFY that finds the loop waiting sends its claim at once, from the listener's callback
(:meth:`RunQueue.claim_now`), when nothing stands in the way (free slots, no pacing, the
loop's connection idle with its statement prepared): the claim is on the wire before the loop
has resumed, and the loop resumes to read its answer. Anything else, and every other wake-up,
claims from the loop as before. A NOTIFY while a claim sent so is on the wire is not absorbed
by it: the loop claims again after it.

It never claims a type no executor of this worker can run (its :class:`ClaimFilter` is the
loop's pattern intersected with the executors').

Each claimed run gets a :class:`RunSession` and an :class:`Execution`, which reports its
decision back through one callback; the producer then frees the slot and hands the outcome to
the completer. A slot frees as soon as its executor returns, before the outcome is written: the
next claim overlaps the previous batch's write. What that lets through is bounded: the runs a
loop holds leases on (executing plus awaiting their outcome write) never exceed twice its
concurrency, so a slow database stalls claiming instead of piling up leases that could expire.

Stopping is River's two phases: stop claiming and let the executions drain for up to the drain
timeout; then ask the rest to stop (``run.stop_reason == "shutdown"``) and release their runs —
pending again, no attempt consumed — unless they finish successfully first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from workfleet.discovery import ExecutorRegistry
from workfleet.errors import StoreError
from workfleet.models import ClaimedRun, Completion, Outcome, RunStatus
from workfleet.runtime.completer import Completer
from workfleet.runtime.execution import Execution, RunSession, Shared
from workfleet.runtime.loops import LoopSpec
from workfleet.runtime.outcomes import Decision
from workfleet.runtime.wakeups import ClaimPacer, Wakeup
from workfleet.settings import RuntimeSettings
from workfleet.store import Observer, RunQueue, SentClaim, WakeSource

# While every claim fills every slot the loop never reads the next due time, so it takes
# workflows whose wait fell due at least this often (seconds).
WAITS_EVERY = 1.0


class Producer:
    """Claims runs for one prefix and drives each to a written outcome."""

    def __init__(
        self,
        spec: LoopSpec,
        settings: RuntimeSettings,
        queue: RunQueue,
        registry: ExecutorRegistry,
        completer: Completer,
        shared: Shared,
        observer: Observer,
    ) -> None:
        self.name = str(spec.pattern)
        self.spec = spec
        self.concurrency = spec.concurrency
        self.settings = settings
        self.queue = queue
        self.registry = registry
        self.completer = completer
        self.shared = shared
        self.observer = observer
        self.log = shared.log
        self._debug = shared.log.is_enabled_for(logging.DEBUG)
        # every run this loop holds a lease on: executing, or awaiting its outcome write
        self.executions: dict[uuid.UUID, Execution] = {}
        self.active = 0  # slots taken by executors still running
        self.unwritten = 0  # outcomes decided but not yet written; their rows are still leased
        self.abandoned_threads = 0  # sync executors still running after their outcome
        self._tasks: set[asyncio.Task[None]] = set()
        self._throttled = False
        self._saturated = False
        self._full = False  # waiting for a slot: every one was taken at the last look
        self._stopping = False
        self._wake = Wakeup()
        self._halt = Wakeup()  # set once, by stop_claiming
        self._wake_source: WakeSource = "start"
        self._parked = False  # in _wait, nothing claimed meanwhile: a NOTIFY may claim at once
        # a claim sent from a NOTIFY's callback: (the claim, when, its limit, with waits)
        self._sent: tuple[SentClaim, float, int, bool] | None = None
        self._pacer = ClaimPacer(settings.fetch_cooldown)
        # when the next claim must take workflows whose wait fell due (time.monotonic())
        self._waits_at = 0.0
        self._waits_checked = float("-inf")
        self._waits_timer: asyncio.TimerHandle | None = None
        # the background read of the next due time, and the wake-up it set
        self._due_task: asyncio.Task[None] | None = None
        self._due_again = False
        self._due_timer: asyncio.TimerHandle | None = None

    # --- signals from the outside ---------------------------------------------------------

    def matches(self, run_type: str) -> bool:
        return any(p.matches(run_type) for p in self.spec.patterns)

    def wake(self, source: WakeSource = "notify") -> None:
        if self._wake.is_set():
            return
        if source == "notify" and self._parked and self._claim_now():
            return  # the loop resumes for the claim's answer; the signal stays clear
        self._wake_source = source
        self._wake.set()

    def _claim_now(self) -> bool:
        """Send the claim a NOTIFY asks for, here in the listener's callback, if it needs no
        waiting; then resume the loop to read its answer. Whatever the loop would have done
        first is done here: the pacing check, the pacer's count, the decision on due waits."""
        free = self.free_slots()
        now = time.monotonic()
        if free <= 0 or self._stopping or self._pacer.delay(now) > 0:
            return False
        self._wake_source = "notify"
        waits = self._waits_due(now)
        s = self.settings
        sent = self.queue.claim_now(s.worker_id, self.spec.filt, free, s.lease_seconds, waits=waits)
        if sent is None:
            return False
        self._pacer.claimed(now)
        self._sent = (sent, now, free, waits)
        self._parked = False
        self._wake.nudge()
        return True

    def cancelled(self, run_id: uuid.UUID) -> None:
        """The run was cancelled (a NOTIFY): stop its execution if this loop runs it."""
        execution = self.executions.get(run_id)
        if execution is not None:
            execution.session.lost(RunStatus.CANCELLED)

    def sessions(self) -> list[RunSession]:
        """The sessions of every lease this loop holds (for the heartbeater)."""
        return [e.session for e in self.executions.values()]

    def free_slots(self) -> int:
        """Runs the next claim may take: free executor slots, less any write backlog beyond
        one concurrency's worth (leases held stay at most twice the concurrency)."""
        return self.concurrency - self.active - max(0, self.unwritten - self.concurrency)

    @property
    def wedged(self) -> bool:
        """Every slot is held by an executor thread that outlived its outcome."""
        return self.abandoned_threads >= self.concurrency

    # --- the claim loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and start runs until :meth:`stop`."""
        try:
            await self._claim_loop()
        finally:
            if self._sent is not None:
                # cancelled before it read the answer of a claim it sent
                self._sent[0].abandon()
                self._sent = None
            task = self._due_task
            if task is not None and not task.done():
                # a next-due read still on the wire: nothing waits for its answer any more
                task.cancel()
                await asyncio.wait([task])

    async def _claim_loop(self) -> None:
        s = self.settings
        error_delay = 0.1
        # a claim already sent is always read, even when stopping: its runs are leased
        while not self._stopping or self._sent is not None:
            free = self.free_slots()
            self._throttled = free < self.concurrency - self.active
            timeout = s.poll_interval * random.uniform(0.9, 1.1)  # noqa: S311
            if free > 0 or self._sent is not None:
                self._full = False
                sent, self._sent = self._sent, None
                claim = sent if sent is not None else await self._claim_from_loop(free)
                if claim is None:
                    break  # stopped while pacing
                pending, last_fetch, free, waits = claim
                try:
                    claimed = await pending
                except StoreError as exc:
                    self.observer.claim_failed(self.name)
                    self.log.warning(
                        "claim failed",
                        prefix=self.name,
                        error=str(exc),
                        retry_in=round(error_delay, 2),
                    )
                    await self._pause(error_delay)
                    error_delay = min(error_delay * 2, s.poll_interval)
                    continue
                error_delay = 0.1
                took = time.monotonic() - last_fetch
                self._saturated = len(claimed) == free
                if waits:
                    # every wait due by now is taken (or locked by another worker), unless the
                    # claim filled every slot; then WAITS_EVERY brings the next look
                    self._waits_checked, self._waits_at = last_fetch, float("inf")
                for run in claimed:
                    self._start(run)
                if claimed:
                    # the executors take their first step before this loop's bookkeeping (the
                    # metrics): after a quiet spell every step on a pickup's path is slow, its
                    # code and data evicted from the caches
                    await asyncio.sleep(0)
                    for run in claimed:
                        self.observer.run_started(
                            self.name, run.type, run.queue_wait.total_seconds()
                        )
                    self.observer.in_flight(self.name, self.active, self.concurrency)
                self.observer.claimed(self.name, len(claimed), took)
                if not self._saturated:
                    self._read_due()
            else:
                # every slot is taken: a freed one wakes the loop (_slot_freed); a wake-up
                # meanwhile (a NOTIFY, a retry) only has it look again, it cannot claim
                self._full = True
                self._wake.clear()
            await self._wait(timeout)

    async def _claim_from_loop(
        self, free: int
    ) -> tuple[Awaitable[list[ClaimedRun]], float, int, bool] | None:
        """The claim of ``free`` runs this loop makes itself (no NOTIFY sent it), after the
        wait its wake-up asks for; None if stopped meanwhile. With when it was made and
        whether it takes due waits."""
        if self._wake_source == "slot":
            # freed slots come in bursts as a batch of outcomes lands: let the burst finish so
            # one claim fills them all
            await asyncio.sleep(0)
        else:
            # wake-ups that keep coming (an INSERT each) are paced: see ClaimPacer
            pause = self._pacer.delay(time.monotonic())
            if pause > 0 and await self._halt.wait(pause):
                return None
        self._wake.clear()
        now = time.monotonic()
        self._pacer.claimed(now)
        waits = self._waits_due(now)
        s = self.settings
        claim = self.queue.claim(s.worker_id, self.spec.filt, free, s.lease_seconds, waits=waits)
        return claim, now, free, waits

    def _waits_due(self, now: float) -> bool:
        """Whether this claim must also take workflows whose wait fell due."""
        if now >= self._waits_at or self._wake_source == "poll":
            return True
        return self._saturated and now - self._waits_checked >= WAITS_EVERY

    def _suspended_until(self, wake_at: datetime) -> None:
        """A workflow this loop ran waits until ``wake_at``: claim it then. Later deadlines
        than a poll interval are left to the poll (and to the next due time it reads)."""
        delay = (wake_at - datetime.now(UTC)).total_seconds()
        if delay > self.settings.poll_interval:
            return
        at = time.monotonic() + max(delay, 0.0) + 0.005
        if at >= self._waits_at:
            return
        self._waits_at = at
        if self._waits_timer is not None:
            self._waits_timer.cancel()
        self._waits_timer = asyncio.get_running_loop().call_later(
            at - time.monotonic(), self.wake, "wait"
        )

    async def _wait(self, timeout: float) -> None:
        self._parked = not self._stopping
        try:
            woken = await self._wake.wait(timeout)
        finally:
            self._parked = False
        if not woken and self._sent is None:
            # (a NOTIFY that sent its claim just as the timeout fired is no poll)
            self._wake_source = "poll"
        if not self._stopping:
            # counted once the claim it leads to is on the wire
            asyncio.get_running_loop().call_soon(self.observer.woke, self.name, self._wake_source)

    async def _pause(self, seconds: float) -> None:
        await self._wake.wait(seconds)

    def _read_due(self) -> None:
        """Read when the next future run is due, in the background: the loop waits for work
        meanwhile, so a NOTIFY during the query claims at once instead of after it (a round
        trip on a pickup's path), and the started runs reach their executors first. A read
        asked for while one is in flight is made again after it."""
        if self._due_task is None or self._due_task.done():
            self._due_task = asyncio.create_task(self._next_due(), name=f"next-due:{self.name}")
        else:
            self._due_again = True

    async def _next_due(self) -> None:
        """The background read (see :meth:`_read_due`). Never raises: a failed read leaves
        the loop to its poll."""
        again = True
        while again and not self._stopping:
            self._due_again = False
            try:
                due = await self.queue.next_due(self.spec.filt)
            except StoreError:
                due = None  # the next claim meets (and reports) the same database problem
            except Exception:  # a bug here must not go unseen, nor stop the loop
                self.log.exception("reading the next due time failed", prefix=self.name)
                due = None
            if not self._stopping:
                self._due_in(due)
            again = self._due_again

    def _due_in(self, seconds: float | None) -> None:
        """The next future run is due in ``seconds`` (None: there is none): wake then rather
        than at the next poll. It may be a workflow's deadline, so that claim takes due waits
        too. The latest read replaces the wake-up an earlier one set."""
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        if seconds is None:
            return
        delay = max(seconds, 0.0) + 0.005
        if delay >= self.settings.poll_interval * 0.9:
            return  # the poll comes first
        self._waits_at = min(self._waits_at, time.monotonic() + delay)
        self._due_timer = asyncio.get_running_loop().call_later(delay, self.wake, "poll")

    # --- executions -------------------------------------------------------------------------------

    def _start(self, claimed: ClaimedRun) -> None:
        session = RunSession(claimed.lease, self.queue, self.settings.worker_id)
        execution = Execution(
            claimed, self.registry.resolve(claimed.type), session, self.shared, self._executed
        )
        self.active += 1
        self.executions[claimed.id] = execution
        # dropped from _tasks by _executed, its last step: no done callback per run
        execution.task = asyncio.create_task(execution.execute(), name=f"run-{claimed.key}")
        self._tasks.add(execution.task)

    def _executed(self, execution: Execution, decision: Decision) -> None:
        """The execution's one report: free its slot, hand its outcome to the completer."""
        if execution.task is not None:
            self._tasks.discard(execution.task)
        if execution.thread_running:
            # a sync executor ignored its timeout or cancellation: its slot stays taken until
            # the thread really ends, so concurrency is never exceeded
            execution.log.warning(
                "executor thread still running after its outcome", outcome=str(decision.outcome)
            )
            self.abandoned_threads += 1
            loop = asyncio.get_running_loop()

            def ended() -> None:  # in the executor's thread
                loop.call_soon_threadsafe(self._thread_ended)

            execution.on_thread_done(ended)
        else:
            self._slot_freed()
        if execution.id not in self.executions:
            return  # released by stop() already; nothing more to write
        if decision.wake_at is not None:
            self._suspended_until(decision.wake_at)
        if decision.completion is None:
            self._finish(execution, decision.outcome)
            return
        self._submit(execution, decision)

    def _submit(self, execution: Execution, decision: Decision) -> None:
        assert decision.completion is not None  # noqa: S101 - callers checked
        self.unwritten += 1
        self.completer.add(decision.completion, partial(self._written, execution, decision))

    def _written(self, execution: Execution, decision: Decision, applied: bool) -> None:
        self.unwritten -= 1
        completion, outcome = decision.completion, decision.outcome
        if applied and completion is not None and completion.delay is not None:
            # back to pending in the future: this loop wakes exactly when it is due
            asyncio.get_running_loop().call_later(completion.delay, self.wake, "retry")
        if not applied and execution.stop_reason is None:
            outcome = Outcome.LEASE_LOST
            execution.log.warning("outcome not written: the lease was lost")
        if self._throttled and self.free_slots() > 0:
            self.wake("slot")
        self._finish(execution, outcome, completion if applied else None)

    def _finish(
        self, execution: Execution, outcome: Outcome, completion: Completion | None = None
    ) -> None:
        self.executions.pop(execution.id, None)
        execution.release()
        seconds = time.monotonic() - execution.started
        if outcome is Outcome.LEASE_LOST:
            self.observer.lease_lost(self.name)
        self.observer.run_finished(self.name, execution.claimed.type, outcome, seconds)
        # the run's own logger (its id, type and attempt bound): this runs in the completer's
        # task, outside the run's log context. Successes are DEBUG: at thousands of runs per
        # second an INFO line each is a log bill (and about a tenth of the worker's CPU);
        # metrics and the audit trail count them.
        if outcome is Outcome.SUCCEEDED or outcome is Outcome.SUSPENDED:
            if self._debug:
                execution.log.debug(f"run {outcome}", seconds=round(seconds, 3))
        elif outcome in (Outcome.SNOOZED, Outcome.RELEASED, Outcome.CANCELLED):
            execution.log.info(f"run {outcome}", seconds=round(seconds, 3))
        else:
            execution.log.warning(
                f"run {outcome}", seconds=round(seconds, 3), **_failure_fields(completion)
            )

    def _slot_freed(self) -> None:
        self.active -= 1
        self.observer.in_flight(self.name, self.active, self.concurrency)
        if self._saturated or self._full:
            # the last claim filled every slot, so more work is probably waiting; or the
            # loop is waiting for this slot
            self.wake("slot")

    def _thread_ended(self) -> None:
        self.abandoned_threads -= 1
        self._slot_freed()

    # --- stopping ---------------------------------------------------------------------------------

    def stop_claiming(self) -> None:
        """Phase one: claim nothing more (:meth:`run` returns after its current step)."""
        self._stopping = True
        for timer in (self._waits_timer, self._due_timer):
            if timer is not None:
                timer.cancel()
        self._halt.set()
        self._wake.set()

    @property
    def running(self) -> list[asyncio.Task[None]]:
        """The tasks of executions that have not decided yet."""
        return list(self._tasks)

    @property
    def undecided(self) -> int:
        """Executions still running without a decision."""
        return sum(1 for e in self.executions.values() if e.decision is None)

    async def release_rest(self, grace: float) -> int:
        """Phase two: stop what still runs; whatever does not succeed is released.

        Executions that have not decided within ``grace`` seconds are released without waiting
        for them (a sync thread or a task that ignores cancellation). Returns how many runs
        were asked to stop.
        """
        leftover = [e for e in self.executions.values() if e.decision is None]
        for execution in leftover:
            execution.request_stop("shutdown", grace=0.0)
        if leftover and self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for execution in leftover:
            if execution.decision is None:
                # it will not decide in time: release its run without it (a later decision
                # finds it gone from the table and writes nothing)
                claimed = execution.claimed
                release = Completion.released(claimed.lease, self.settings.worker_id)
                self._submit(execution, Decision(Outcome.RELEASED, release))
                self.executions.pop(execution.id, None)
        return len(leftover)


def _failure_fields(completion: Completion | None) -> dict[str, Any]:
    """What a failed or retried run's log line says: the error, and when it is tried next."""
    if completion is None or completion.error is None:
        return {}
    data = completion.event_data
    fields: dict[str, Any] = {"error": completion.error}
    for key in ("error_type", "traceback"):
        if key in data:
            fields[key] = data[key]
    if completion.status is RunStatus.PENDING and completion.delay is not None:
        # the database computes run_at from its own clock; this one is near enough to read
        fields["retry_in_seconds"] = round(completion.delay, 3)
        fields["next_try_at"] = (datetime.now(UTC) + timedelta(seconds=completion.delay)).isoformat(
            timespec="seconds"
        )
    return fields
