"""One execution of one claimed run: its session (the lease) and its run to a decision.

An :class:`Execution` is built with everything it needs — the claimed run, the executor spec,
its :class:`RunSession`, the worker's shared pieces and a ``done`` callback — and knows no SQL.
It validates the payload, calls the plugin function (async on the loop, sync in a thread) under
the executor's timeout, turns what happened into a :class:`~workfleet.runtime.outcomes.Decision`
and reports it, once, through ``done``. Writing the decision is its producer's business.

A stop can be requested at any time (the run was cancelled, its lease was lost, the worker is
shutting down): ``run.cancelled`` is set at once, ``run.stop_reason`` says why, and the task is
cancelled after a grace period.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from workfleet.checkpoints import WorkflowStore
from workfleet.models import ClaimedRun, Fail, Lease, Outcome, RunStatus
from workfleet.observability.logging import Logger, bind_run_context
from workfleet.plugin import ExecutorSpec, Run, StopReason, SyncRun
from workfleet.runtime import outcomes
from workfleet.runtime.outcomes import Decision, Policy
from workfleet.store import Observer, RunQueue
from workfleet.workflow.base import session_of
from workfleet.workflow.context import Workflow
from workfleet.workflow.driver import WorkflowDriver
from workfleet.workflow.session import WorkflowSession

Done = Callable[["Execution", Decision], None]


async def settled(future: asyncio.Future[Any], timeout: float | None) -> bool:
    """Wait until ``future`` is done or ``timeout`` passes; True when it is done.

    ``asyncio.wait({future}, timeout=...)`` without its per-call set, task wrapping and
    bookkeeping (a tenth of a no-op run's CPU). Like it, this never cancels ``future``, and
    cancelling the caller leaves ``future`` running.
    """
    if future.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    timer = None if timeout is None else loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        future.remove_done_callback(wake)
        if timer is not None:
            timer.cancel()
    return future.done()


def _ignore_loss(status: RunStatus | None) -> None:
    """A session's ``on_lost`` before an execution takes it, and after it is finished."""


class RunSession:
    """The lease of one claimed run as its execution holds it: extend it, learn it is lost.

    The heartbeater and the listener's cancellations reach the run through :meth:`lost`; the
    executor's own ``run.heartbeat()`` through :meth:`extend` (a :class:`LeaseHandle`).
    """

    __slots__ = ("lease", "on_lost", "queue", "worker_id")

    def __init__(self, lease: Lease, queue: RunQueue, worker_id: str) -> None:
        self.lease = lease
        self.queue = queue
        self.worker_id = worker_id
        self.on_lost: Callable[[RunStatus | None], None] = _ignore_loss

    async def extend(self, seconds: float) -> bool:
        """Extend the lease to at least ``seconds`` from now (audited); False when it is gone."""
        result = await self.queue.extend_lease(self.worker_id, self.lease, seconds)
        if not result.held:
            self.lost(result.status)
        return result.held

    def lost(self, status: RunStatus | None) -> None:
        """The lease is no longer held: the row is ``status`` now (None: it is gone)."""
        self.on_lost(status)


@dataclass(frozen=True, slots=True)
class Shared:
    """What every execution of a worker uses: the decision policy, the thread pool for sync
    executors, the worker's logger, and the checkpoint store of durable workflows (None: this
    worker cannot run workflows, and a claimed one fails saying so)."""

    policy: Policy
    threads: concurrent.futures.ThreadPoolExecutor
    log: Logger
    workflows: WorkflowStore | None = None
    max_output_bytes: int = 1 << 20
    observer: Observer | None = None


class Execution:
    """One run being executed (see the module docstring for the contract)."""

    def __init__(
        self,
        claimed: ClaimedRun,
        spec: ExecutorSpec | None,
        session: RunSession,
        shared: Shared,
        done: Done,
    ) -> None:
        self.claimed = claimed
        self.spec = spec
        self.session = session
        self.shared = shared
        self._done = done
        self.decision: Decision | None = None
        self.stop_reason: StopReason | None = None
        self.started = time.monotonic()
        self.run: Run[Any] | SyncRun[Any] | None = None
        self.task: asyncio.Task[None] | None = None  # the task running execute(), if any
        self._log: Logger | None = None
        self._inner: asyncio.Future[Any] | None = None
        # an async executor without a timeout runs in this execution's own task (see _inline)
        self._inline_task: asyncio.Task[Any] | None = None
        self._inline_cancelled = False
        self._thread_future: concurrent.futures.Future[Any] | None = None
        self._grace_handle: asyncio.TimerHandle | None = None
        session.on_lost = self._lost

    @property
    def id(self) -> uuid.UUID:
        return self.claimed.id

    @property
    def log(self) -> Logger:
        """The worker's logger bound to this run (bound on first use: most runs never log)."""
        if self._log is None:
            c = self.claimed
            self._log = self.shared.log.bind(run_id=c.key, type=c.type, attempt=c.attempt + 1)
        return self._log

    @property
    def thread_running(self) -> bool:
        """True while a sync executor's thread still runs (it cannot be interrupted)."""
        return self._thread_future is not None and not self._thread_future.done()

    def on_thread_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the worker thread) when the sync executor's thread ends."""
        if self._thread_future is None:
            raise RuntimeError("not a sync execution")
        self._thread_future.add_done_callback(lambda _f: callback())

    def release(self) -> None:
        """Drop the references that tie this execution, its session and its run into a cycle,
        so that all three are freed at once instead of by the cyclic garbage collector (which
        would otherwise cost several microseconds per run)."""
        self.session.on_lost = _ignore_loss
        self.run = None
        self._inner = None
        self._inline_task = None
        self.task = None

    # --- stopping ---------------------------------------------------------------------------------

    def request_stop(self, reason: StopReason, grace: float | None = None) -> None:
        """Set ``run.cancelled`` now (the first reason given is the one kept) and cancel the
        executor's task after ``grace`` seconds (default: the policy's cancel grace)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.run is not None:
            self.run.stop_reason = self.stop_reason
            self.run.cancelled.set()
        wait = self.shared.policy.cancel_grace if grace is None else grace
        if self._grace_handle is not None:
            self._grace_handle.cancel()
        self._grace_handle = asyncio.get_running_loop().call_later(wait, self._cancel_inner)

    def _cancel_inner(self) -> None:
        if self._inner is not None and not self._inner.done():
            self._inner.cancel()
        elif self._inline_task is not None:
            self._inline_cancelled = True
            self._inline_task.cancel()

    def _lost(self, status: RunStatus | None) -> None:
        if self.stop_reason is not None or self.decision is not None:
            # already stopping, or already decided: the fenced outcome write settles it
            return
        if status is RunStatus.CANCELLED:
            self.log.info("run cancelled while running; stopping it")
            self.request_stop("cancelled")
        else:
            self.log.warning(
                "lease lost; stopping the run without writing its outcome",
                status=None if status is None else str(status),
            )
            self.request_stop("lease_lost", grace=0.0)

    # --- running --------------------------------------------------------------------------------

    async def execute(self) -> None:
        """Run the executor to a decision and report it through ``done``. Never raises (but
        for the task's own cancellation at teardown)."""
        c = self.claimed
        # this task's context: any structlog logger the executor uses carries the run
        bind_run_context(c.key, c.type, c.attempt + 1, self.session.worker_id)
        try:
            decision = await self._decide()
        except Exception as exc:  # a runtime bug: no write, the lease expires and is retried
            self.log.exception("execution failed unexpectedly", error=repr(exc))
            decision = Decision(Outcome.FAILED, None)
        finally:
            if self._grace_handle is not None:
                self._grace_handle.cancel()
        self.decision = decision
        self._done(self, decision)

    async def _decide(self) -> Decision:
        c, spec, policy = self.claimed, self.spec, self.shared.policy
        if spec is None:
            # the claim filter only selects executable types, so the registry changed under us
            missing = Fail(f"no executor for type {c.type!r} in this worker")
            return outcomes.failure(c, spec, policy, missing, outcome=Outcome.FAILED, terminal=True)
        if c.payload_error is not None:
            return outcomes.fail_now(c, spec, policy, f"invalid payload: {c.payload_error}")
        if spec.workflow and self.shared.workflows is None:
            return outcomes.fail_now(c, spec, policy, "this worker has no workflow store")
        payload: Any = c.payload
        if spec.payload_model is not None:
            try:
                payload = spec.payload_model.model_validate(c.payload)
            except ValidationError as exc:
                message = f"invalid payload: {_validation_summary(exc)}"
                return outcomes.fail_now(c, spec, policy, message)
        self.run = self._build_run(payload)
        if self.stop_reason is not None:  # stopped before it even started
            self.run.stop_reason = self.stop_reason
            self.run.cancelled.set()
        timeout = spec.timeout or policy.default_timeout
        if timeout is None and spec.is_async and not spec.workflow:
            return await self._inline(spec, self.run)
        self._inner = inner = self._start(spec, self.run)
        if not await settled(inner, timeout):
            # whatever the task ends with after this (an executor that turns its cancellation
            # into Fail, say) is of no use: retrieved, so asyncio never reports it as lost
            inner.add_done_callback(_retrieve)
            inner.cancel()
            await settled(inner, policy.cancel_grace)
            if self.stop_reason is not None:
                return outcomes.stopped(c, self.stop_reason, policy)
            return outcomes.timed_out(c, spec, policy, timeout or 0.0)
        cancelled = inner.cancelled()
        raised = None if cancelled else inner.exception()
        return outcomes.finished(
            c,
            spec,
            policy,
            value=None if cancelled or raised is not None else inner.result(),
            exc=raised,
            cancelled=cancelled,
            stop=self.stop_reason,
            seconds=time.monotonic() - self.started,
        )

    async def _inline(self, spec: ExecutorSpec, run: Run[Any] | SyncRun[Any]) -> Decision:
        """Await an async executor without a timeout in this task: no second task, future and
        waiter per run. A stop's grace cancels this task; that cancellation is taken back here
        (``uncancel``) and decided like a cancelled executor task. A cancellation from anywhere
        else (teardown) propagates. An executor that swallows the cancellation keeps its slot
        until it returns, since it is still running."""
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always called from the execution's task
        self._inline_task = task
        value: Any = None
        raised: Exception | None = None
        cancelled = False
        try:
            value = await spec.fn(run)
        except asyncio.CancelledError:
            if task.cancelling() and not self._inline_cancelled:
                raise  # not ours: the task itself is being torn down
            cancelled = True  # our stop's grace ran out, or the executor raised it itself
        except Exception as exc:  # noqa: BLE001 - the executor's failure is an outcome
            raised = exc
        finally:
            self._inline_task = None
            if self._inline_cancelled and task.cancelling():
                task.uncancel()
        return outcomes.finished(
            self.claimed,
            spec,
            self.shared.policy,
            value=value,
            exc=raised,
            cancelled=cancelled,
            stop=self.stop_reason,
            seconds=time.monotonic() - self.started,
        )

    def _build_run(self, payload: Any) -> Run[Any] | SyncRun[Any]:
        c, spec, shared = self.claimed, self.spec, self.shared
        kwargs: dict[str, Any] = {
            "id": c.id,
            "type": c.type,
            "payload": payload,
            "raw_payload": c.payload,
            "attempt": c.attempt + 1,
            "max_attempts": spec.max_attempts if spec and spec.max_attempts else c.max_attempts,
            "handle": self.session,
            "log": self.shared.log,
        }
        if spec is not None and spec.workflow and shared.workflows is not None:
            session = WorkflowSession(
                shared.workflows,
                self.session.worker_id,
                c.lease,
                c.claimed_at,
                max_output_bytes=shared.max_output_bytes,
                lost=self.session.lost,
                patches=spec.patches,
                run_type=c.type,
                observer=shared.observer,
            )
            return Workflow(session=session, **kwargs)
        if spec is not None and not spec.is_async:
            return SyncRun(loop=asyncio.get_running_loop(), **kwargs)
        return Run(**kwargs)

    def _start(self, spec: ExecutorSpec, run: Run[Any] | SyncRun[Any]) -> asyncio.Future[Any]:
        if isinstance(run, Workflow):
            grace = self.shared.policy.cancel_grace
            driver = WorkflowDriver(spec.fn, run, session_of(run), grace)
            return asyncio.ensure_future(driver.run())
        if spec.is_async:
            future: asyncio.Future[Any] = asyncio.ensure_future(spec.fn(run))
            return future
        # the thread sees the run's log context (structlog contextvars) like an async executor
        context = contextvars.copy_context()
        self._thread_future = self.shared.threads.submit(context.run, spec.fn, run)
        return asyncio.wrap_future(self._thread_future)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _validation_summary(exc: ValidationError) -> str:
    """Field paths and messages only: never the offending input values (they may be secret)."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
