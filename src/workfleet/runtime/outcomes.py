"""Deciding what one execution amounts to: pure functions, no I/O, no event loop.

An execution ends in a :class:`Decision`: the metric :class:`Outcome` and the
:class:`Completion` to write (None when nothing may be written: the run was cancelled or its
lease lost while it ran). The rules, in order:

- a stop requested because the run was cancelled or its lease lost writes nothing;
- after a stop requested because *this worker* is shutting down, anything but success releases
  the run (pending, runnable now, no attempt consumed): a shutdown is not the run's failure;
- success stores the result (a value that is not JSON fails the run at once);
- ``Snooze`` goes back to pending without consuming an attempt; ``Fail`` (and an unusable
  payload) fails at once; ``Retry`` and any other exception consume an attempt and retry after
  the backoff, or fail once attempts are exhausted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workfleet.encoding import error_data, printable, short_error, to_json, traceback_text
from workfleet.models import (
    MAX_DELAY_SECONDS,
    ClaimedRun,
    Completion,
    Fail,
    Outcome,
    Retry,
    Snooze,
    Suspended,
)
from workfleet.plugin import ExecutorSpec, StopReason
from workfleet.retry import DEFAULT_BACKOFF, Backoff

__all__ = [
    "Decision",
    "Policy",
    "error_data",
    "printable",
    "short_error",
    "to_json",
    "traceback_text",
]


@dataclass(slots=True)
class Decision:
    """What one execution amounts to: the write to make (if any) and the metric outcome.
    Read-only by convention (one is built per run; a frozen dataclass costs four times as
    much to build)."""

    outcome: Outcome
    completion: Completion | None
    wake_at: datetime | None = None  # a suspended workflow's wake-up (database clock)


@dataclass(frozen=True, slots=True)
class Policy:
    """Worker-wide defaults an executor spec may override."""

    backoff: Backoff = DEFAULT_BACKOFF
    cancel_grace: float = 5.0
    default_timeout: float | None = None
    worker_id: str = ""


def _max_attempts(claimed: ClaimedRun, spec: ExecutorSpec | None) -> int:
    return spec.max_attempts if spec and spec.max_attempts else claimed.max_attempts


def failure(
    claimed: ClaimedRun,
    spec: ExecutorSpec | None,
    policy: Policy,
    exc: BaseException,
    *,
    outcome: Outcome,
    terminal: bool = False,
    after: float | None = None,
    error: str | None = None,
) -> Decision:
    """An attempt that failed: retry with backoff, or fail when attempts are exhausted."""
    attempt_no = claimed.attempt + 1
    message = printable(error) if error else short_error(exc)
    maximum = _max_attempts(claimed, spec)
    data: dict[str, Any] = {
        "attempt": attempt_no,
        "max_attempts": maximum,  # the executor's may differ from the row's column
        "error": message,
        **error_data(exc),
        # who ran this attempt and since when: the attempts table of `workfleet inspect` has
        # them even when the leased/started events are not written (WORKFLEET_RUN_EVENTS)
        "worker_id": policy.worker_id,
        "started_at": claimed.claimed_at.isoformat(),
    }
    if terminal or attempt_no >= maximum:
        kind = Outcome.TIMED_OUT if outcome is Outcome.TIMED_OUT else Outcome.FAILED
        return Decision(kind, Completion.failed(claimed.lease, message, data))
    backoff = (spec.backoff if spec and spec.backoff else None) or policy.backoff
    # a policy is user code: its delay is bounded like Retry(after=...) is
    delay = (
        after if after is not None else min(max(backoff.delay(attempt_no), 0.0), MAX_DELAY_SECONDS)
    )
    data["retry_in_seconds"] = round(delay, 3)
    return Decision(outcome, Completion.retry(claimed.lease, delay, message, data))


def fail_now(
    claimed: ClaimedRun, spec: ExecutorSpec | None, policy: Policy, message: str
) -> Decision:
    """A failure no retry can fix (bad payload, unusable result): failed at once."""
    return failure(
        claimed, spec, policy, Fail(message), outcome=Outcome.FAILED, terminal=True, error=message
    )


_STOPPED: dict[str, Outcome] = {"cancelled": Outcome.CANCELLED, "lease_lost": Outcome.LEASE_LOST}


def stopped(claimed: ClaimedRun, reason: StopReason, policy: Policy) -> Decision:
    """The executor did not finish because it was stopped for ``reason``."""
    if reason == "shutdown":
        return Decision(Outcome.RELEASED, Completion.released(claimed.lease, policy.worker_id))
    # cancelled, or the lease is another's: any write would be fenced off anyway
    return Decision(_STOPPED[reason], None)


def timed_out(
    claimed: ClaimedRun, spec: ExecutorSpec | None, policy: Policy, timeout: float
) -> Decision:
    """The executor outlived its timeout (and was cancelled)."""
    exc = TimeoutError(f"executor timed out after {timeout:g}s")
    error = f"timed out after {timeout:g}s"
    return failure(claimed, spec, policy, exc, outcome=Outcome.TIMED_OUT, error=error)


def finished(
    claimed: ClaimedRun,
    spec: ExecutorSpec | None,
    policy: Policy,
    *,
    value: Any = None,
    exc: BaseException | None = None,
    cancelled: bool = False,
    stop: StopReason | None = None,
    seconds: float = 0.0,
) -> Decision:
    """The executor returned ``value``, raised ``exc`` or its task was ``cancelled``, with a
    stop requested for ``stop`` (None: no stop) before it ended."""
    succeeded = not cancelled and exc is None
    if stop is not None and (stop != "shutdown" or not succeeded):
        return stopped(claimed, stop, policy)
    if cancelled:
        error = RuntimeError("executor task was cancelled")
        return failure(claimed, spec, policy, error, outcome=Outcome.RETRIED)
    if exc is None:
        try:
            result_json = to_json(value)
        except (TypeError, ValueError) as err:
            message = f"executor returned a value that is not JSON-serialisable: {err}"
            return fail_now(claimed, spec, policy, message)
        done = {"attempt": claimed.attempt + 1, "duration_seconds": round(seconds, 6)}
        return Decision(Outcome.SUCCEEDED, Completion.succeeded(claimed.lease, result_json, done))
    if isinstance(exc, Suspended):
        # the workflow runtime wrote the suspension itself, under the run's lock
        return Decision(Outcome.SUSPENDED, None, exc.wake_at)
    if isinstance(exc, Snooze):
        data: dict[str, Any] = {
            "reason": "snoozed",
            "snooze_seconds": exc.after,
            "attempt": claimed.attempt + 1,
        }
        return Decision(Outcome.SNOOZED, Completion.snoozed(claimed.lease, exc.after, data))
    if isinstance(exc, Fail):
        return failure(claimed, spec, policy, exc, outcome=Outcome.FAILED, terminal=True)
    if isinstance(exc, Retry):
        return failure(claimed, spec, policy, exc, outcome=Outcome.RETRIED, after=exc.after)
    return failure(claimed, spec, policy, exc, outcome=Outcome.RETRIED)
