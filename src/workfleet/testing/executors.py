"""Run one executor with a payload and look at its outcome, without a worker or a database (as
River's ``rivertest`` and ``Oban.Testing.perform_job`` do).

    from workfleet.testing import run_executor

    async def test_invoice() -> None:
        done = await run_executor(plugin, "acme.billing.invoice.v1", {"invoice_id": "1"})
        assert done.succeeded, done.error
        assert done.result == {"status": "generated"}

The run goes through what a worker does with it: the payload model validates the payload, the
executor runs (a sync one in a thread) under its timeout, and its return value or exception is
decided by the same rules (``Retry``, ``Snooze``, ``Fail``, backoff, ``max_attempts``, a result
that is not JSON). What would be written is returned instead of written: the run's next status,
its result or ``last_error``, the retry delay and the audit event's data (the traceback, for an
exception). ``run.heartbeat()`` works (on an in-memory store); ``cancel_after`` sets
``run.cancelled`` as a cancellation by a user would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import structlog

from workfleet.discovery import ExecutorRegistry
from workfleet.models import NewRun, Outcome, RunStatus
from workfleet.plugin import Plugin
from workfleet.retry import Backoff
from workfleet.runtime.execution import Execution, RunSession, Shared
from workfleet.runtime.outcomes import Decision, Policy
from workfleet.store import ClaimFilter
from workfleet.testing.memory_store import MemoryStore

WORKER_ID = "workfleet-testing"


@dataclass(frozen=True, slots=True)
class ExecutorResult:
    """What one execution amounts to, and what a worker would have written.

    ``status`` is the run's status afterwards (``pending`` again for a retry or a snooze; None
    when nothing would be written, after a cancellation); ``retry_in`` the seconds until it may
    run again; ``event`` the data of its ``succeeded``, ``retried`` or ``failed`` event.
    """

    outcome: Outcome
    status: RunStatus | None
    result: Any = None
    error: str | None = None
    retry_in: float | None = None
    event: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.outcome is Outcome.SUCCEEDED

    @property
    def failed(self) -> bool:
        """Failed for good (no attempt left, ``Fail``, an invalid payload or result)."""
        return self.status is RunStatus.FAILED

    @property
    def retried(self) -> bool:
        """Back to pending after a failed attempt (an exception, ``Retry`` or a timeout)."""
        return self.status is RunStatus.PENDING and self.outcome is not Outcome.SNOOZED

    @property
    def snoozed(self) -> bool:
        return self.outcome is Outcome.SNOOZED


async def run_executor(
    plugin: Plugin | ExecutorRegistry,
    run_type: str,
    payload: Any = None,
    *,
    attempt: int = 1,
    max_attempts: int = 3,
    backoff: Backoff | None = None,
    cancel_after: float | None = None,
) -> ExecutorResult:
    """Execute the executor of ``plugin`` that serves ``run_type`` once, as attempt number
    ``attempt`` (1: the first) of a run whose row allows ``max_attempts`` (an executor's own
    ``max_attempts`` wins, as in a worker). ``backoff`` stands for the worker's default retry
    policy; ``cancel_after`` cancels the run that many seconds into the execution.

    Raises ``LookupError`` when no executor serves ``run_type``.
    """
    registry = plugin if isinstance(plugin, ExecutorRegistry) else ExecutorRegistry()
    if isinstance(plugin, Plugin):
        registry.add_plugin(plugin)
    spec = registry.resolve(run_type)
    if spec is None:
        raise LookupError(
            f"no executor serves {run_type!r} (executors: "
            f"{', '.join(map(str, registry.patterns)) or 'none'})"
        )
    store = MemoryStore()
    await store.enqueue_many([NewRun(run_type, payload, max_attempts=max_attempts)])
    [claimed] = await store.claim(WORKER_ID, ClaimFilter((run_type,), ()), 1, 3600)
    claimed = dataclasses.replace(claimed, attempt=attempt - 1)
    policy = Policy(cancel_grace=1.0, worker_id=WORKER_ID)
    if backoff is not None:
        policy = dataclasses.replace(policy, backoff=backoff)
    decided: list[Decision] = []
    threads = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="workfleet-test")
    shared = Shared(policy, threads, structlog.get_logger())
    session = RunSession(claimed.lease, store, WORKER_ID)
    execution = Execution(claimed, spec, session, shared, lambda _e, d: decided.append(d))
    timer = None
    if cancel_after is not None:
        timer = asyncio.get_running_loop().call_later(
            cancel_after, execution.request_stop, "cancelled"
        )
    try:
        await execution.execute()
    finally:
        if timer is not None:
            timer.cancel()
        # a sync executor that ignored its timeout runs on, as in a worker: not waited for
        threads.shutdown(wait=False)
    [decision] = decided
    completion = decision.completion
    if completion is None:
        return ExecutorResult(decision.outcome, None)
    return ExecutorResult(
        outcome=decision.outcome,
        status=completion.status,
        result=None if completion.result_json is None else json.loads(completion.result_json),
        error=completion.error,
        retry_in=completion.delay if completion.status is RunStatus.PENDING else None,
        event=dict(completion.event_data),
    )
