"""Steps: a function run once and checkpointed, with its retry policy (``wf.step``), and a
step whose writes commit with its checkpoint (``wf.transaction``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from workfleet.checkpoints import (
    Checkpoint,
    LeaseLostError,
    StepKind,
    StepRecord,
    StepStatus,
)
from workfleet.encoding import short_error, traceback_text
from workfleet.workflow.base import WorkflowBase, activity, decode, give_up, invoke, split_call
from workfleet.workflow.history import NonDeterminismError
from workfleet.workflow.policy import (
    DEFAULT_RETRY,
    INLINE_RETRY_SECONDS,
    RetryPolicy,
)
from workfleet.workflow.session import Wait

P = TypeVar("P")


class StepsMixin(WorkflowBase[P]):
    """``wf.step`` and ``wf.transaction``."""

    __slots__ = ()

    # --- steps ----------------------------------------------------------------------------

    @activity
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
        name, fn, args = split_call(call)
        policy = retry or DEFAULT_RETRY

        async def attempt() -> Any:
            result = invoke(fn, args, kwargs)
            if timeout is not None:
                return await asyncio.wait_for(result, timeout)
            return await result

        return await self._run_step(name, key, attempt, policy, required, default, returns)

    @activity
    async def transaction(
        self, *call: Any, key: str | None = None, returns: type[BaseModel] | None = None
    ) -> Any:
        """Run ``fn(connection, *args)`` inside the transaction that writes its checkpoint:
        its writes to this database and the step's completion commit together, exactly once.

        ``connection`` is a psycopg ``AsyncConnection`` in an open transaction; do not commit
        it. A failure rolls everything back and is retried like a step's.
        """
        name, fn, args = split_call(call)
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
        key = self._key(name, explicit)
        record = self._reach(key, StepKind.STEP, name)
        if record is not None and record.status is StepStatus.SUCCEEDED:
            return decode(record.output, returns)
        if record is not None and record.status is StepStatus.FAILED:
            return give_up(key, record.error or "failed", required, default)
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
                return decode(json.loads(text), returns)
            except (asyncio.CancelledError, LeaseLostError, NonDeterminismError):
                raise
            except Exception as exc:  # noqa: BLE001 - a step's failure is data: retry or record it
                error = short_error(exc)
                retry_at = await self._failed_try(key, name, exc, tries, policy)
            if retry_at is None:
                return give_up(key, error, required, default)
            if retry_at > s.db_now():
                await s.block(Wait("retry", key, wake_at=retry_at))

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
