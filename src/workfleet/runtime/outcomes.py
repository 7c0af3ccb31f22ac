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

import json
import re
import traceback
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from workfleet.dsn import redact
from workfleet.models import (
    MAX_DELAY_SECONDS,
    ClaimedRun,
    Completion,
    Fail,
    Outcome,
    Retry,
    Snooze,
)
from workfleet.plugin import ExecutorSpec, StopReason
from workfleet.retry import DEFAULT_BACKOFF, Backoff

MAX_ERROR_CHARS = 500
MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 8000
# the frames nearest the raise say what went wrong; the outer ones are the runtime's own
MAX_TRACEBACK_FRAMES = 20

# A JSON "\u0000" escape that is not itself an escaped backslash followed by "u0000"
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


@dataclass(frozen=True, slots=True)
class Decision:
    """What one execution amounts to: the write to make (if any) and the metric outcome."""

    outcome: Outcome
    completion: Completion | None


@dataclass(frozen=True, slots=True)
class Policy:
    """Worker-wide defaults an executor spec may override."""

    backoff: Backoff = DEFAULT_BACKOFF
    cancel_grace: float = 5.0
    default_timeout: float | None = None
    worker_id: str = ""


def printable(text: str) -> str:
    """``text`` as PostgreSQL ``text`` and ``jsonb`` accept it: NUL spelt ``\\x00``, lone
    surrogates escaped. One such character would fail the whole batched outcome write."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def short_error(exc: BaseException) -> str:
    """A one-line, bounded ``last_error`` for humans: ``Type: message``."""
    text = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    label = type(exc).__name__
    line = printable(f"{label}: {text}" if text else label)
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def traceback_text(exc: BaseException) -> str:
    """The exception's traceback, secrets-free and bounded: its last ``MAX_TRACEBACK_FRAMES``
    frames (per exception in a chain), no local variables (never formatted), passwords in any
    DSN-looking text redacted, and its last ``MAX_TRACEBACK_CHARS`` characters."""
    text = redact("".join(traceback.format_exception(exc, limit=-MAX_TRACEBACK_FRAMES)))
    return printable(text[-MAX_TRACEBACK_CHARS:])


def error_data(exc: BaseException) -> dict[str, Any]:
    """What an attempt's failed or retried event records about its exception: the type's
    qualified name, the full message (bounded, passwords redacted) and the traceback (not for
    ``Fail``/``Retry``, which are decisions, not accidents)."""
    kind = type(exc)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    message = printable(redact(str(exc)))
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    data: dict[str, Any] = {"error_type": f"{module}{kind.__qualname__}", "message": message}
    if not isinstance(exc, Fail | Retry):
        data["traceback"] = traceback_text(exc)
    return data


def to_json(value: Any) -> str:
    """Serialise an executor's return value; raise ``TypeError``/``ValueError`` if impossible
    (not JSON, NaN or infinity, a NUL character or a lone surrogate, which ``jsonb`` refuses)."""
    if isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise ValueError("it contains a NUL character (\\u0000), which jsonb cannot store")
    if "\\ud" in text:
        # json.dumps escapes surrogates; a lone one (not a pair) is refused by jsonb
        try:
            json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "it contains a lone UTF-16 surrogate, which jsonb cannot store"
            ) from None
    return text


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
