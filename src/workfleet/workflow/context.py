"""The workflow author's API: :class:`Workflow`, what a workflow function receives as ``wf``.

Everything a workflow does that must not happen twice goes through ``wf``: steps, durable
sleeps, signals, children, deterministic values. Each is checkpointed under a key; replaying
the function after a crash, a retry or a wait returns the stored result instead of running
again. Code between those calls is replayed every time, so it must be deterministic (no clock,
no randomness, no I/O: use ``wf.now()``, ``wf.random()`` and steps).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import random as _random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from workfleet.checkpoints import (
    Checkpoint,
    LeaseLostError,
    StepKind,
    StepRecord,
    StepStatus,
)
from workfleet.encoding import short_error, to_json, traceback_text
from workfleet.models import Fail
from workfleet.plugin import Run
from workfleet.workflow.children import ChildHandle, ChildResult, ChildSpec, new_children
from workfleet.workflow.history import NonDeterminismError
from workfleet.workflow.policy import (
    DEFAULT_RETRY,
    INLINE_RETRY_SECONDS,
    ChildFailed,
    RetryPolicy,
    SignalTimeout,
    StepFailed,
)
from workfleet.workflow.session import Wait, WorkflowSession

P = TypeVar("P")
AF = TypeVar("AF", bound=Callable[..., Awaitable[Any]])
M = TypeVar("M", bound=BaseModel)
PATCHES_KEY = "__patches__"
_MISSING: Any = object()


def _activity(method: AF) -> AF:
    """Count the call as activity while it runs (not while it is blocked on a wait): the
    driver suspends the run only when no call of the workflow is active."""

    @functools.wraps(method)
    async def active(self: Workflow[Any], *args: Any, **kwargs: Any) -> Any:
        session = self._session
        session.enter()
        try:
            return await method(self, *args, **kwargs)
        finally:
            session.leave()

    return cast("AF", active)


class Workflow(Run[P]):
    """One execution of a durable workflow run (a :class:`~workfleet.Run` with checkpoints).

    ``id``, ``type``, ``payload``, ``attempt``, ``cancelled``, ``log`` and ``heartbeat`` are
    the run's, as for any executor.
    """

    __slots__ = ("_session",)

    def __init__(self, *, session: WorkflowSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._session = session

    # --- steps ----------------------------------------------------------------------------

    @_activity
    async def step(
        self,
        *call: Any,
        key: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        required: bool = True,
        default: Any = None,
        returns: type[BaseModel] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` once and return its (stored) result.

        Call as ``wf.step("charge", charge_card, order)`` or ``wf.step(charge_card, order)``
        (the name is then the function's). ``fn`` may be async or sync (sync runs in a thread).
        The result must be JSON (or a pydantic model); the step returns it as decoded JSON, or
        validated into ``returns``, the same on the first run and on every replay.

        ``retry`` (default: 3 tries, exponential backoff) retries inside the execution or, for
        longer delays, by suspending the run; ``timeout`` bounds one try. A step that fails for
        good raises :class:`StepFailed`, or returns ``default`` when ``required=False``.
        """
        name, fn, args = _split_call(call)
        policy = retry or DEFAULT_RETRY

        async def attempt() -> Any:
            result = _invoke(fn, args, kwargs)
            if timeout is not None:
                return await asyncio.wait_for(result, timeout)
            return await result

        return await self._run_step(name, key, attempt, policy, required, default, returns)

    @_activity
    async def transaction(
        self, *call: Any, key: str | None = None, returns: type[BaseModel] | None = None
    ) -> Any:
        """Run ``fn(connection, *args)`` inside the transaction that writes its checkpoint:
        its writes to this database and the step's completion commit together, exactly once.

        ``connection`` is a psycopg ``AsyncConnection`` in an open transaction; do not commit
        it. A failure rolls everything back and is retried like a step's.
        """
        name, fn, args = _split_call(call)
        return await self._run_step(
            name, key, None, DEFAULT_RETRY, True, None, returns, transact=(fn, args)
        )

    async def _run_step(
        self,
        name: str,
        explicit: str | None,
        attempt_fn: Callable[[], Any] | None,
        policy: RetryPolicy,
        required: bool,
        default: Any,
        returns: type[BaseModel] | None,
        transact: tuple[Callable[..., Any], tuple[Any, ...]] | None = None,
    ) -> Any:
        s = self._session
        self._guard()
        key = s.history.key_for(name, explicit)
        record = self._reach(key, StepKind.STEP, name)
        if record is not None and record.status is StepStatus.SUCCEEDED:
            return _decode(record.output, returns)
        if record is not None and record.status is StepStatus.FAILED:
            return _give_up(key, record.error or "failed", required, default)
        if record is None:
            await self._check_new(key)
        tries = record.attempts if record is not None else 0
        if record is not None and record.wake_at is not None and record.wake_at > s.db_now():
            await s.block(Wait("retry", key, wake_at=record.wake_at))
        return await self._execute(
            key, name, explicit, tries, attempt_fn, policy, required, default, returns, transact
        )

    async def _execute(
        self,
        key: str,
        name: str,
        explicit: str | None,
        tries: int,
        attempt_fn: Callable[[], Any] | None,
        policy: RetryPolicy,
        required: bool,
        default: Any,
        returns: type[BaseModel] | None,
        transact: tuple[Callable[..., Any], tuple[Any, ...]] | None,
    ) -> Any:
        """Try the step until it succeeds or fails for good (see :meth:`step`)."""
        s = self._session
        s.history.enter_auto(name, explicit)
        try:
            while True:
                self._guard()
                tries += 1
                started = time.monotonic()
                try:
                    if transact is not None:
                        text = await self._transact(key, name, tries, transact, started)
                    else:
                        text = self._encode(await attempt_fn())  # type: ignore[misc]
                        seconds = round(time.monotonic() - started, 6)
                        data = {"attempts": tries, "seconds": seconds}
                        await self._write(key, name, StepStatus.SUCCEEDED, text, tries, None, data)
                    return _decode(json.loads(text), returns)
                except (asyncio.CancelledError, LeaseLostError, NonDeterminismError):
                    raise
                except Exception as exc:  # noqa: BLE001 - a step's failure is data: retry or record it
                    error = short_error(exc)
                    retry_at = await self._failed_try(key, name, exc, tries, policy)
                if retry_at is None:
                    return _give_up(key, error, required, default)
                if retry_at > s.db_now():
                    await s.block(Wait("retry", key, wake_at=retry_at))
        finally:
            s.history.leave_auto(name, explicit)

    async def _failed_try(
        self, key: str, name: str, exc: Exception, tries: int, policy: RetryPolicy
    ) -> datetime | None:
        """Record a failed try: None when the step failed for good, else when to try again
        (a short backoff is slept here and returns a time already passed)."""
        s = self._session
        error = short_error(exc)
        if not policy.retries(exc, tries):
            data = {"attempts": tries, "error": error, "traceback": traceback_text(exc)}
            await self._write(key, name, StepStatus.FAILED, None, tries, error, data)
            return None
        delay = max(policy.backoff.delay(tries), 0.0)
        if delay <= INLINE_RETRY_SECONDS:
            await asyncio.sleep(delay)
            return s.db_now()
        wake_at = s.db_now() + timedelta(seconds=delay)
        data = {"attempts": tries, "error": error, "retry_at": wake_at.isoformat()}
        await self._write(key, name, StepStatus.RETRYING, None, tries, error, data, wake_at)
        return wake_at

    async def _transact(
        self,
        key: str,
        name: str,
        tries: int,
        transact: tuple[Callable[..., Any], tuple[Any, ...]],
        started: float,
    ) -> str:
        s = self._session
        fn, args = transact
        text: list[str] = []

        def finish(value: Any) -> Checkpoint:
            text.append(self._encode(value))
            seconds = round(time.monotonic() - started, 6)
            event: dict[str, Any] = {"key": key, "name": name, "kind": "step"}
            event["status"] = "succeeded"
            event |= {"attempts": tries, "seconds": seconds, "transaction": True}
            return Checkpoint(
                key, name, StepKind.STEP, StepStatus.SUCCEEDED, text[0], None, tries, None, event
            )

        async def body(connection: Any) -> Any:
            return await fn(connection, *args)

        try:
            await s.store.transact(s.worker_id, s.lease, body, finish)
        except LeaseLostError as exc:
            self._lost(exc)
        s.keep(StepRecord(key, name, StepKind.STEP, StepStatus.SUCCEEDED, None, None, tries))
        return text[0]

    # --- durable sleep --------------------------------------------------------------------

    @_activity
    async def sleep(self, duration: timedelta | float, *, key: str | None = None) -> None:
        """Wait ``duration`` (a timedelta or seconds) durably: the run gives its slot and lease
        back and resumes after, across worker restarts; no attempt is consumed."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
        if not (isinstance(seconds, int | float) and seconds >= 0):
            raise ValueError(f"wf.sleep() needs a duration >= 0, got {duration!r}")
        await self._sleep(key, lambda now: now + timedelta(seconds=seconds))

    @_activity
    async def sleep_until(self, when: datetime, *, key: str | None = None) -> None:
        """Wait durably until ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValueError("wf.sleep_until() needs a timezone-aware datetime")
        await self._sleep(key, lambda _now: when)

    async def _sleep(self, explicit: str | None, until: Callable[[datetime], datetime]) -> None:
        s = self._session
        self._guard()
        key = s.history.key_for("sleep", explicit)
        record = self._reach(key, StepKind.SLEEP, "sleep")
        if record is not None and record.status is StepStatus.SUCCEEDED:
            return
        if record is None:
            await self._check_new(key)
        wake_at = record.wake_at if record is not None and record.wake_at else until(s.db_now())
        if wake_at > s.db_now():
            start = None
            if record is None:
                start = Checkpoint(
                    key, "sleep", StepKind.SLEEP, StepStatus.WAITING, wake_at=wake_at
                )
            await s.block(Wait("sleep", key, wake_at=wake_at, checkpoint=start))
        data = {"until": wake_at.isoformat()}
        await self._write(
            key, "sleep", StepStatus.SUCCEEDED, None, 0, None, data, wake_at, StepKind.SLEEP
        )

    # --- signals --------------------------------------------------------------------------

    @_activity
    async def wait_signal(
        self,
        name: str,
        model: type[M] | None = None,
        *,
        timeout: timedelta | float | None = None,
        key: str | None = None,
    ) -> Any:
        """Wait durably for the signal ``name`` sent to this run and return its payload
        (validated into ``model`` when given). A signal sent before the wait is not lost: it
        waits in the run's mailbox. Each wait takes one signal, oldest first. After
        ``timeout`` raises :class:`SignalTimeout`."""
        s = self._session
        self._guard()
        key = s.history.key_for(f"signal:{name}", key)
        record = self._reach(key, StepKind.SIGNAL, name)
        if record is not None and record.status is StepStatus.SUCCEEDED:
            return _decode(record.output, model)
        if record is not None and record.status is StepStatus.FAILED:
            raise SignalTimeout(name, key)
        if record is None:
            await self._check_new(key)
        if record is not None:
            deadline = record.wake_at
        elif timeout is not None:
            seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
            deadline = s.db_now() + timedelta(seconds=seconds)
        else:
            deadline = None
        start = None
        if record is None:
            start = Checkpoint(key, name, StepKind.SIGNAL, StepStatus.WAITING, wake_at=deadline)
        while True:
            self._guard()
            receipt = Checkpoint(key, name, StepKind.SIGNAL, StepStatus.SUCCEEDED, attempts=1)
            try:
                message = await s.store.consume_signal(s.worker_id, s.lease, receipt, name)
            except LeaseLostError as exc:
                self._lost(exc)
            if message is not None:
                s.keep(
                    StepRecord(key, name, StepKind.SIGNAL, StepStatus.SUCCEEDED, message.payload)
                )
                if s.observer is not None:
                    waited = (s.db_now() - message.created_at).total_seconds()
                    s.observer.signal_taken(s.run_type, waited)
                return _decode(message.payload, model)
            if deadline is not None and deadline <= s.db_now():
                data = {"signal": name, "timed_out": True}
                await self._write(
                    key,
                    name,
                    StepStatus.FAILED,
                    None,
                    0,
                    "timed out",
                    data,
                    deadline,
                    StepKind.SIGNAL,
                )
                raise SignalTimeout(name, key)
            await s.block(Wait("signal", key, wake_at=deadline, signal=name, checkpoint=start))

    # --- children -------------------------------------------------------------------------

    @_activity
    async def start_child(
        self,
        type: str,
        payload: Any = None,
        *,
        key: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
    ) -> ChildHandle:
        """Start a child run (any type, run by whichever worker serves it), once per key."""
        spec = ChildSpec(type, payload, priority=priority, max_attempts=max_attempts)
        [handle] = await self._start_children(f"child:{type}", key, [spec])
        return handle

    @_activity
    async def start_children(
        self, children: Sequence[ChildSpec], *, key: str | None = None
    ) -> list[ChildHandle]:
        """Start many children in one statement (a fan-out), once per key."""
        return await self._start_children("children", key, children)

    async def _start_children(
        self, name: str, explicit: str | None, children: Sequence[ChildSpec]
    ) -> list[ChildHandle]:
        s = self._session
        self._guard()
        key = s.history.key_for(name, explicit)
        record = self._reach(key, StepKind.CHILDREN, name)
        if record is not None and record.status is StepStatus.SUCCEEDED:
            return [ChildHandle.from_json(item) for item in record.output]
        if record is None:
            await self._check_new(key)
        new = new_children(key, children)
        checkpoint = Checkpoint(key, name, StepKind.CHILDREN, StepStatus.SUCCEEDED, attempts=1)
        try:
            ids = await s.store.start_children(s.worker_id, s.lease, checkpoint, new)
        except LeaseLostError as exc:
            self._lost(exc)
        handles = [ChildHandle(i, c.key, c.type) for i, c in zip(ids, new, strict=True)]
        output = [h.to_json() for h in handles]
        s.keep(StepRecord(key, name, StepKind.CHILDREN, StepStatus.SUCCEEDED, output))
        return handles

    @_activity
    async def gather(
        self, *handles: ChildHandle | Iterable[ChildHandle], key: str | None = None
    ) -> list[ChildResult]:
        """Wait durably until every child is final; their outcomes, in order (a fan-in)."""
        s = self._session
        flat = _flatten(handles)
        self._guard()
        key = s.history.key_for("gather", key)
        record = self._reach(key, StepKind.GATHER, "gather")
        if record is not None and record.status is StepStatus.SUCCEEDED:
            return [ChildResult.from_json(item) for item in record.output]
        if record is None:
            await self._check_new(key)
        while True:
            self._guard()
            states = await s.store.child_states([h.id for h in flat])
            waiting = tuple(c.id for c in states if not c.finished)
            if not waiting:
                results = [ChildResult.of(h, c) for h, c in zip(flat, states, strict=True)]
                text = self._encode([r.to_json() for r in results])
                data = {"children": len(results), "failed": sum(not r.ok for r in results)}
                await self._write(
                    key, "gather", StepStatus.SUCCEEDED, text, 1, None, data, None, StepKind.GATHER
                )
                if s.observer is not None:
                    s.observer.children_gathered(s.run_type, len(results))
                return results
            await s.block(Wait("children", key, children=waiting))

    @_activity
    async def child(
        self,
        type: str,
        payload: Any = None,
        *,
        key: str | None = None,
    ) -> Any:
        """Start a child, wait for it, and return its result (:class:`ChildFailed` otherwise)."""
        handle = await self.start_child(type, payload, key=key)
        [result] = await self.gather(handle, key=f"{handle.key}:result")
        if not result.ok:
            raise ChildFailed(result.type, result.status, result.error)
        return result.result

    # --- deterministic values -------------------------------------------------------------

    @_activity
    async def now(self) -> datetime:
        """The current time, recorded once: a replay gets the same value."""
        text = await self._value("now", lambda: self._session.db_now().isoformat())
        return datetime.fromisoformat(text)

    @_activity
    async def uuid7(self) -> uuid.UUID:
        """A time-ordered UUID (version 7), recorded once."""
        return uuid.UUID(await self._value("uuid7", lambda: str(_uuid7())))

    @_activity
    async def random(self) -> float:
        """A random float in [0, 1), recorded once."""
        return float(await self._value("random", _random.random))

    async def _value(self, name: str, make: Callable[[], Any]) -> Any:
        s = self._session
        self._guard()
        key = s.history.key_for(name, None)
        record = self._reach(key, StepKind.VALUE, name)
        if record is not None:
            return record.output
        value = make()
        await self._write(
            key, name, StepStatus.SUCCEEDED, json.dumps(value), 1, None, None, None, StepKind.VALUE
        )
        return value

    @_activity
    async def patched(self, patch_id: str) -> bool:
        """True when this run started under code that knows ``patch_id`` (declared with
        ``@plugin.workflow(..., patches=[...])``): runs in flight from before the patch take
        the old branch, new runs the new one. See docs/workflows.md, "Versioning"."""
        s = self._session
        if patch_id not in s.declared_patches:
            raise ValueError(
                f"patch {patch_id!r} is not declared: "
                "add it to @plugin.workflow(..., patches=[...])"
            )
        record = s.history.reach(PATCHES_KEY, StepKind.PATCHES, "patches")
        if record is None:
            # a run with no checkpoint yet starts under this code; one with checkpoints
            # started under code that knew none of these patches
            known = list(s.declared_patches) if s.history.loaded == 0 else []
            await self._write(
                PATCHES_KEY,
                "patches",
                StepStatus.SUCCEEDED,
                json.dumps(known),
                1,
                None,
                None,
                None,
                StepKind.PATCHES,
            )
            return patch_id in known
        return patch_id in (record.output or [])

    # --- plumbing -------------------------------------------------------------------------

    def _guard(self) -> None:
        s = self._session
        if s.fatal is not None:
            raise s.fatal
        if s.closed or self.cancelled.is_set():
            raise asyncio.CancelledError("the workflow's execution is stopping")

    def _reach(self, key: str, kind: StepKind, name: str) -> StepRecord | None:
        try:
            return self._session.history.reach(key, kind, name)
        except NonDeterminismError as exc:
            self._session.fatal = exc
            raise

    async def _check_new(self, key: str) -> None:
        """A step not in the history starts: every recorded one must have been reached first
        (else the code changed: a renamed or removed step). Sibling branches get a few loop
        turns to replay theirs before that is decided."""
        history = self._session.history
        for _ in range(8):
            if not history.has_unreached:
                return
            await asyncio.sleep(0)
        left = [f"{r.kind} {r.key!r}" for r in history.unreached()[:5]]
        exc = NonDeterminismError(
            f"this execution starts new step {key!r} but the run's history has "
            f"{', '.join(left)} not reached (a step renamed or removed while runs were in "
            "flight: keep its key with key=..., or bump the type's version)"
        )
        self._session.fatal = exc
        raise exc

    def _encode(self, value: Any) -> str:
        """The value's JSON text; :class:`~workfleet.models.Fail` (never retried: the same
        value fails the same way) when jsonb cannot store it or it is over the size limit."""
        try:
            text = to_json(value)
        except (TypeError, ValueError) as exc:
            raise Fail(f"the output cannot be stored: {exc}") from None
        size = len(text.encode("utf-8"))
        if size > self._session.max_output_bytes:
            raise Fail(
                f"the output is {size} bytes; the limit is {self._session.max_output_bytes} "
                "(WORKFLEET_WORKFLOW_MAX_OUTPUT_BYTES): store big data elsewhere and return a "
                "reference"
            )
        return text

    async def _write(
        self,
        key: str,
        name: str,
        status: StepStatus,
        output_json: str | None,
        attempts: int,
        error: str | None,
        data: dict[str, Any] | None,
        wake_at: datetime | None = None,
        kind: StepKind = StepKind.STEP,
    ) -> None:
        s = self._session
        event = (
            None
            if data is None
            else {"key": key, "name": name, "kind": str(kind)} | {"status": str(status)} | data
        )
        checkpoint = Checkpoint(
            key, name, kind, status, output_json, error, attempts, wake_at, event
        )
        try:
            await s.store.checkpoint(s.worker_id, s.lease, checkpoint)
        except LeaseLostError as exc:
            self._lost(exc)
        output = None if output_json is None else json.loads(output_json)
        s.keep(StepRecord(key, name, kind, status, output, error, attempts, wake_at))

    def _lost(self, exc: LeaseLostError) -> Any:
        """A fenced write found the lease gone: stop this execution, whatever the code does."""
        self._session.fatal = exc
        self._session.lost(exc.status)
        raise exc


def _split_call(call: tuple[Any, ...]) -> tuple[str, Callable[..., Any], tuple[Any, ...]]:
    if not call:
        raise TypeError("wf.step() needs a function: wf.step('name', fn, *args)")
    if isinstance(call[0], str):
        if len(call) < 2 or not callable(call[1]):
            raise TypeError(f"wf.step({call[0]!r}, ...) needs a function after the name")
        return call[0], call[1], call[2:]
    if not callable(call[0]):
        raise TypeError("wf.step() needs a name or a function first")
    fn = call[0]
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name, fn, call[1:]


async def _invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    result = await asyncio.get_running_loop().run_in_executor(None, call)
    if inspect.isawaitable(result):
        return await result
    return result


def _decode(output: Any, model: type[BaseModel] | None) -> Any:
    return output if model is None else model.model_validate(output)


def _give_up(key: str, error: str, required: bool, default: Any) -> Any:
    if required:
        raise StepFailed(key, error)
    return default


def _flatten(handles: tuple[ChildHandle | Iterable[ChildHandle], ...]) -> list[ChildHandle]:
    flat: list[ChildHandle] = []
    for item in handles:
        if isinstance(item, ChildHandle):
            flat.append(item)
        else:
            flat.extend(item)
    return flat


def _uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = _random.getrandbits(74)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)
