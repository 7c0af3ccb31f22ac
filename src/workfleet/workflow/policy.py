"""Per-step policies (retries, timeouts) and the exceptions a workflow sees. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field

from workfleet.models import Fail
from workfleet.retry import Backoff, ExponentialBackoff

# A retry due sooner than this waits inside the execution; a later one gives the slot and the
# lease back and resumes when it is due (no process holds a slot while a workflow waits).
INLINE_RETRY_SECONDS = 0.5

DEFAULT_STEP_BACKOFF: Backoff = ExponentialBackoff(base=1.0, factor=2.0, cap=300.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a step is retried: up to ``attempts`` tries in all, ``backoff`` between them, only
    for exceptions in ``retry_on`` and not in ``give_up_on`` (orchwf's retryable errors).

    Step retries never consume the workflow run's own attempts.
    """

    attempts: int = 3
    backoff: Backoff = field(default=DEFAULT_STEP_BACKOFF)
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")

    def retries(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based), which raised ``exc``, is tried again."""
        if attempt >= self.attempts or isinstance(exc, Fail):
            return False
        if isinstance(exc, self.give_up_on):
            return False
        return isinstance(exc, self.retry_on)


NO_RETRY = RetryPolicy(attempts=1)
DEFAULT_RETRY = RetryPolicy()


class StepFailed(Fail):
    """A required step failed for good (its retries are spent or its error is not retryable).

    Uncaught, it fails the workflow run at once; ``workfleet resume`` runs the step again and
    keeps every finished step. ``key`` names the step, ``error`` is its last error.
    """

    def __init__(self, key: str, error: str) -> None:
        super().__init__(f"step {key!r} failed: {error}")
        self.key = key
        self.error = error


class SignalTimeout(Fail):
    """``wait_signal`` timed out before the signal came. Uncaught, it fails the run."""

    def __init__(self, name: str, key: str) -> None:
        super().__init__(f"signal {name!r} did not arrive in time (wait {key!r})")
        self.name = name
        self.key = key


class ChildFailed(Fail):
    """A child run waited for with :meth:`Workflow.child` did not succeed."""

    def __init__(self, child_type: str, status: str, error: str | None) -> None:
        super().__init__(f"child {child_type} {status}" + (f": {error}" if error else ""))
        self.child_type = child_type
        self.status = status
        self.error = error
