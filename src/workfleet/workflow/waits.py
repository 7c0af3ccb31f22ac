"""Everything a workflow waits for without holding a slot: durable sleep, signals, children."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
from workfleet.workflow.base import WorkflowBase, activity, decode, flatten
from workfleet.workflow.children import ChildHandle, ChildResult, ChildSpec, new_children
from workfleet.workflow.policy import (
    ChildFailed,
    SignalTimeout,
)
from workfleet.workflow.session import Wait

P = TypeVar("P")
M = TypeVar("M", bound=BaseModel)


class WaitsMixin(WorkflowBase[P]):
    """``wf.sleep``, ``wf.wait_signal``, ``wf.start_child(ren)``, ``wf.gather``, ``wf.child``."""

    __slots__ = ()

    # --- durable sleep --------------------------------------------------------------------

    @activity
    async def sleep(self, duration: timedelta | float, *, key: str | None = None) -> None:
        """Wait ``duration`` (a timedelta or seconds) durably: the run gives its slot and lease
        back and resumes after, across worker restarts; no attempt is consumed."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
        if not (isinstance(seconds, int | float) and seconds >= 0):
            raise ValueError(f"wf.sleep() needs a duration >= 0, got {duration!r}")
        await self._sleep(key, lambda now: now + timedelta(seconds=seconds))

    @activity
    async def sleep_until(self, when: datetime, *, key: str | None = None) -> None:
        """Wait durably until ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValueError("wf.sleep_until() needs a timezone-aware datetime")
        await self._sleep(key, lambda _now: when)

    async def _sleep(self, explicit: str | None, until: Callable[[datetime], datetime]) -> None:
        s = self._session
        self._guard()
        key = self._key("sleep", explicit)
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

    @activity
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
        key = self._key(f"signal:{name}", key)
        record = self._reach(key, StepKind.SIGNAL, name)
        if record is not None and record.status is StepStatus.SUCCEEDED:
            return decode(record.output, model)
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
                return decode(message.payload, model)
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

    @activity
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

    @activity
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
        key = self._key(name, explicit)
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

    @activity
    async def gather(
        self, *handles: ChildHandle | Iterable[ChildHandle], key: str | None = None
    ) -> list[ChildResult]:
        """Wait durably until every child is final; their outcomes, in order (a fan-in)."""
        s = self._session
        flat = flatten(handles)
        self._guard()
        key = self._key("gather", key)
        record = self._reach(key, StepKind.GATHER, "gather")
        if record is not None and record.status is StepStatus.SUCCEEDED:
            return [ChildResult.from_json(item) for item in record.output]
        if record is None:
            await self._check_new(key)
        while True:
            self._guard()
            states = await s.store.child_states([h.id for h in flat])
            strangers = [c.id for c in states if c.parent_id not in (None, s.run_id)]
            if strangers:
                # only this run's children wake it when they finish
                raise ValueError(
                    f"gather() takes children this workflow started, not {strangers[0]}"
                )
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

    @activity
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
