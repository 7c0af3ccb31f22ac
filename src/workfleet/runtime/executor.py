"""The executor: runs exactly one claimed run and decides its outcome. It knows no SQL.

It validates the payload, calls the plugin function (async on the loop, sync in a thread) under
the executor's timeout, and turns what happened into a :class:`Completion` for the completer —
or into no write at all when the run was cancelled or its lease lost while it ran.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import re
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from workfleet.models import (
    ClaimedRun,
    Completion,
    EventType,
    Fail,
    Lease,
    Outcome,
    Retry,
    RunStatus,
    Snooze,
)
from workfleet.plugin import ExecutorSpec, LeaseHandle, Run, SyncRun
from workfleet.retry import DEFAULT_BACKOFF, Backoff

StopReason = Literal["cancelled", "lease_lost", "shutdown"]
_STOP_OUTCOME: dict[str, Outcome] = {
    "cancelled": Outcome.CANCELLED,
    "lease_lost": Outcome.LEASE_LOST,
    "shutdown": Outcome.RELEASED,
}
MAX_ERROR_CHARS = 500
MAX_TRACEBACK_CHARS = 8000


# A JSON "\u0000" escape that is not itself an escaped backslash followed by "u0000"
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _printable(text: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL: one such character would make the whole
    # batched outcome write fail, again and again
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def short_error(exc: BaseException) -> str:
    """A one-line, bounded ``last_error`` for humans: ``Type: message`` (NUL spelt ``\\x00``)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    label = type(exc).__name__
    line = _printable(f"{label}: {text}" if text else label)
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def _traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return _printable(text[-MAX_TRACEBACK_CHARS:])


def to_json(value: Any) -> str:
    """Serialise an executor's return value; raise ``TypeError``/``ValueError`` if impossible
    (not JSON, NaN or infinity, or a NUL character, which ``jsonb`` cannot store)."""
    if isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise ValueError("it contains a NUL character (\\u0000), which jsonb cannot store")
    return text


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


@dataclass(frozen=True, slots=True)
class Decision:
    """What one execution amounts to: the write to make (if any) and the metric outcome."""

    outcome: Outcome
    completion: Completion | None


class ExecutionPolicy:
    """Worker-wide defaults an executor spec may override."""

    def __init__(
        self,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        cancel_grace: float = 5.0,
        default_timeout: float | None = None,
    ) -> None:
        self.backoff = backoff
        self.cancel_grace = cancel_grace
        self.default_timeout = default_timeout


def _failure(
    claimed: ClaimedRun,
    spec: ExecutorSpec | None,
    policy: ExecutionPolicy,
    exc: BaseException,
    *,
    outcome: Outcome,
    terminal: bool = False,
    after: float | None = None,
    error: str | None = None,
) -> Decision:
    """An attempt that failed: retry with backoff, or fail when attempts are exhausted."""
    lease = Lease(claimed.id, claimed.attempt)
    attempt_no = claimed.attempt + 1
    max_attempts = spec.max_attempts if spec and spec.max_attempts else claimed.max_attempts
    message = _printable(error) if error else short_error(exc)
    data: dict[str, Any] = {"attempt": attempt_no, "error": message}
    if not isinstance(exc, Fail | Retry):
        data["traceback"] = _traceback(exc)
    if terminal or attempt_no >= max_attempts:
        return Decision(
            Outcome.TIMED_OUT if outcome is Outcome.TIMED_OUT else Outcome.FAILED,
            Completion(lease, RunStatus.FAILED, EventType.FAILED, True, None, None, message, data),
        )
    backoff = (spec.backoff if spec and spec.backoff else None) or policy.backoff
    delay = after if after is not None else backoff.delay(attempt_no)
    data["retry_in_seconds"] = round(delay, 3)
    return Decision(
        outcome,
        Completion(lease, RunStatus.PENDING, EventType.RETRIED, True, delay, None, message, data),
    )


def _fail_now(
    claimed: ClaimedRun, spec: ExecutorSpec | None, policy: ExecutionPolicy, message: str
) -> Decision:
    """A failure no retry can fix (bad payload, unusable result): failed at once."""
    return _failure(
        claimed, spec, policy, Fail(message), outcome=Outcome.FAILED, terminal=True, error=message
    )


class Execution:
    """One run being executed; the runtime keeps it in its in-flight table until written."""

    def __init__(
        self,
        claimed: ClaimedRun,
        spec: ExecutorSpec | None,
        policy: ExecutionPolicy,
        log: Any,
        threads: concurrent.futures.ThreadPoolExecutor,
        handle: LeaseHandle | None = None,
    ) -> None:
        self.claimed = claimed
        self.spec = spec
        self.policy = policy
        self.handle = handle
        self.decision: Decision | None = None
        self._log_source = log
        self._log: Any = None
        self.threads = threads
        self.stop_reason: StopReason | None = None
        self.started = time.monotonic()
        self.run: Run[Any] | SyncRun[Any] | None = None
        self._inner: asyncio.Future[Any] | None = None
        self._thread_future: concurrent.futures.Future[Any] | None = None
        self._grace_handle: asyncio.TimerHandle | None = None

    @property
    def log(self) -> Any:
        """The runtime's logger bound to this run (bound on first use)."""
        if self._log is None:
            c = self.claimed
            self._log = self._log_source.bind(run_id=str(c.id), type=c.type, attempt=c.attempt + 1)
        return self._log

    @property
    def id(self) -> uuid.UUID:
        return self.claimed.id

    @property
    def lease(self) -> Lease:
        return Lease(self.claimed.id, self.claimed.attempt)

    @property
    def thread_running(self) -> bool:
        """True while a sync executor's thread still runs (it cannot be interrupted)."""
        return self._thread_future is not None and not self._thread_future.done()

    def on_thread_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the worker thread) when the sync executor's thread ends."""
        if self._thread_future is None:
            raise RuntimeError("not a sync execution")
        self._thread_future.add_done_callback(lambda _f: callback())

    def request_stop(self, reason: StopReason, grace: float | None = None) -> None:
        """Ask the executor to stop: set ``run.cancelled`` now, cancel its task after ``grace``."""
        if self.stop_reason is None or reason == "shutdown":
            self.stop_reason = self.stop_reason or reason
        if self.run is not None:
            self.run.cancelled.set()
        wait = self.policy.cancel_grace if grace is None else grace
        if self._grace_handle is not None:
            self._grace_handle.cancel()
        loop = asyncio.get_running_loop()
        self._grace_handle = loop.call_later(wait, self._cancel_inner)

    def _cancel_inner(self) -> None:
        if self._inner is not None and not self._inner.done():
            self._inner.cancel()

    def _build_run(self, payload: Any) -> Run[Any] | SyncRun[Any]:
        c = self.claimed
        if self.handle is None:
            raise RuntimeError("an Execution needs a lease handle before it runs")
        kwargs: dict[str, Any] = {
            "id": c.id,
            "type": c.type,
            "payload": payload,
            "raw_payload": c.payload,
            "attempt": c.attempt + 1,
            "max_attempts": (
                self.spec.max_attempts if self.spec and self.spec.max_attempts else c.max_attempts
            ),
            "handle": self.handle,
            "log": self._log_source,
        }
        if self.spec is not None and not self.spec.is_async:
            return SyncRun(loop=asyncio.get_running_loop(), **kwargs)
        return Run(**kwargs)

    async def execute(self) -> Decision:
        """Run the executor to an outcome. Never raises (except when the runtime is torn down)."""
        c, spec = self.claimed, self.spec
        if spec is None:
            # the claim filter only selects executable types, so this means the registry
            # changed under us; fail loudly rather than loop on it
            exc = Fail(f"no executor for type {c.type!r} in this worker")
            return _failure(c, spec, self.policy, exc, outcome=Outcome.FAILED, terminal=True)
        payload: Any = c.payload
        if spec.payload_model is not None:
            try:
                payload = spec.payload_model.model_validate(c.payload)
            except ValidationError as exc:
                message = f"invalid payload: {_validation_summary(exc)}"
                return _fail_now(c, spec, self.policy, message)
        self.run = self._build_run(payload)
        if self.stop_reason is not None:  # cancelled before it even started
            self.run.cancelled.set()
        timeout = spec.timeout or self.policy.default_timeout
        self._inner = self._start(spec)
        try:
            done = await settled(self._inner, timeout)
        finally:
            if self._grace_handle is not None:
                self._grace_handle.cancel()
        if not done:
            self._inner.cancel()
            await settled(self._inner, self.policy.cancel_grace)
            if self.stop_reason is not None:
                return Decision(_STOP_OUTCOME[self.stop_reason], None)
            timed_out = TimeoutError(f"executor timed out after {timeout:g}s")
            return _failure(
                c,
                spec,
                self.policy,
                timed_out,
                outcome=Outcome.TIMED_OUT,
                error=f"timed out after {timeout:g}s",
            )
        return self._decide(self._inner)

    def _start(self, spec: ExecutorSpec) -> asyncio.Future[Any]:
        if self.run is None:
            raise RuntimeError("_start called before the run was built")
        if spec.is_async:
            future: asyncio.Future[Any] = asyncio.ensure_future(spec.fn(self.run))
            return future
        # the thread sees the run's log context (structlog contextvars) like an async executor
        context = contextvars.copy_context()
        self._thread_future = self.threads.submit(context.run, spec.fn, self.run)
        return asyncio.wrap_future(self._thread_future)

    def _decide(self, inner: asyncio.Future[Any]) -> Decision:
        c, spec = self.claimed, self.spec
        lease = Lease(c.id, c.attempt)
        if self.stop_reason is not None and (inner.cancelled() or self.stop_reason != "shutdown"):
            # cancelled or lease lost: any write would be fenced off anyway; shutdown: released
            return Decision(_STOP_OUTCOME[self.stop_reason], None)
        if inner.cancelled():
            return _failure(
                c,
                spec,
                self.policy,
                RuntimeError("executor task was cancelled"),
                outcome=Outcome.RETRIED,
            )
        data: dict[str, Any]
        exc = inner.exception()
        if exc is None:
            try:
                result_json = to_json(inner.result())
            except (TypeError, ValueError) as err:
                message = f"executor returned a value that is not JSON-serialisable: {err}"
                return _fail_now(c, spec, self.policy, message)
            data = {
                "attempt": c.attempt + 1,
                "duration_seconds": round(time.monotonic() - self.started, 6),
            }
            return Decision(
                Outcome.SUCCEEDED,
                Completion(
                    lease,
                    RunStatus.SUCCEEDED,
                    EventType.SUCCEEDED,
                    False,
                    None,
                    result_json,
                    None,
                    data,
                ),
            )
        if isinstance(exc, Snooze):
            data = {"reason": "snoozed", "snooze_seconds": exc.after, "attempt": c.attempt + 1}
            return Decision(
                Outcome.SNOOZED,
                Completion(
                    lease, RunStatus.PENDING, EventType.RETRIED, False, exc.after, None, None, data
                ),
            )
        if isinstance(exc, Fail):
            return _failure(c, spec, self.policy, exc, outcome=Outcome.FAILED, terminal=True)
        if isinstance(exc, Retry):
            return _failure(c, spec, self.policy, exc, outcome=Outcome.RETRIED, after=exc.after)
        return _failure(c, spec, self.policy, exc, outcome=Outcome.RETRIED)


def _validation_summary(exc: ValidationError) -> str:
    """Field paths and messages only: never the offending input values (they may be secret)."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
