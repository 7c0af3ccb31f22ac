"""The plumbing under :class:`~workfleet.workflow.Workflow`: its session, the activity count,
reaching recorded keys, writing checkpoints, and what happens when a fenced write finds the
lease gone. Pure helpers for the parts above it (``steps``, ``waits``, ``context``)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import random as _random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from workfleet.checkpoints import (
    Checkpoint,
    LeaseLostError,
    StepKind,
    StepRecord,
    StepStatus,
)
from workfleet.encoding import to_json
from workfleet.models import Fail
from workfleet.plugin import Run
from workfleet.workflow.children import ChildHandle
from workfleet.workflow.history import NonDeterminismError
from workfleet.workflow.policy import (
    StepFailed,
)
from workfleet.workflow.session import WorkflowSession

P = TypeVar("P")
# loop turns a new step waits at most for sibling branches to replay their recorded steps
_MAX_SETTLE_TURNS = 10_000
AF = TypeVar("AF", bound=Callable[..., Awaitable[Any]])


# The auto-numbered names (``sleep``, ``gather``, ``charge``...) the current call took a key
# for: released when the call ends. Each asyncio task (each concurrent branch) has its own.
_OPEN_NAMES: contextvars.ContextVar[list[tuple[str, str | None]] | None] = contextvars.ContextVar(
    "workfleet_workflow_open_names", default=None
)


def activity(method: AF) -> AF:
    """Count the call as activity while it runs (not while it is blocked on a wait): the
    driver suspends the run only when no call of the workflow is active. Keys the call took by
    name (``sleep``, ``sleep#2``) stay taken until it ends, so two concurrent calls of one name
    without ``key=`` are refused instead of numbered in scheduling order."""

    @functools.wraps(method)
    async def active(self: WorkflowBase[Any], *args: Any, **kwargs: Any) -> Any:
        if _OPEN_NAMES.get() is not None:
            # called by another call of the workflow (wf.child -> wf.gather): the outer call
            # counts as activity, and a wait inside it must not be held up by that count
            return await method(self, *args, **kwargs)
        session = self._session
        session.enter()
        opened: list[tuple[str, str | None]] = []
        token = _OPEN_NAMES.set(opened)
        try:
            return await method(self, *args, **kwargs)
        finally:
            _OPEN_NAMES.reset(token)
            for name, explicit in opened:
                session.history.leave_auto(name, explicit)
            session.leave()

    return cast("AF", active)


def session_of(wf: WorkflowBase[Any]) -> WorkflowSession:
    """The execution state a workflow's driver shares with it."""
    return wf._session


class WorkflowBase(Run[P]):
    """A :class:`~workfleet.Run` with the checkpointing plumbing every workflow call uses."""

    __slots__ = ("_session",)

    def __init__(self, *, session: WorkflowSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._session = session

    # --- plumbing -------------------------------------------------------------------------

    def _guard(self) -> None:
        s = self._session
        if s.fatal is not None:
            raise s.fatal
        if s.closed or self.cancelled.is_set():
            raise asyncio.CancelledError("the workflow's execution is stopping")

    def _key(self, name: str, explicit: str | None) -> str:
        """The key of this call: ``explicit``, or ``name`` numbered by call order (``name#2``).
        A numbered name stays taken until the call ends (see :func:`activity`)."""
        history = self._session.history
        key = history.key_for(name, explicit)
        history.enter_auto(name, explicit)
        opened = _OPEN_NAMES.get()
        if opened is not None:
            opened.append((name, explicit))
        return key

    def _reach(self, key: str, kind: StepKind, name: str) -> StepRecord | None:
        try:
            return self._session.history.reach(key, kind, name)
        except NonDeterminismError as exc:
            self._session.fatal = exc
            raise

    async def _check_new(self, key: str) -> None:
        """A step not in the history starts: every recorded one must have been reached first
        (else the code changed: a renamed or removed step). Sibling branches replay theirs
        first: this waits while they make progress (reach recorded keys, however long their
        chain of dependencies), and decides once three loop turns pass without any."""
        history = self._session.history
        reached, idle = len(history.reached), 0
        for _ in range(_MAX_SETTLE_TURNS):
            if not history.has_unreached:
                return
            await asyncio.sleep(0)
            if len(history.reached) != reached:
                reached, idle = len(history.reached), 0
            else:
                idle += 1
                if idle >= 3:
                    break
        left = [f"{r.kind} {r.key!r}" for r in history.unreached()[:5]]
        exc = NonDeterminismError(
            f"this execution starts new step {key!r} but the run's history has "
            f"{', '.join(left)} not reached (a step renamed, removed or added while runs were "
            "in flight: keep the old step's name, bump the type's version, or branch with "
            "wf.patched())"
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


def split_call(call: tuple[Any, ...]) -> tuple[str, Callable[..., Any], tuple[Any, ...]]:
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


async def invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    result = await asyncio.get_running_loop().run_in_executor(None, call)
    if inspect.isawaitable(result):
        return await result
    return result


def decode(output: Any, model: type[BaseModel] | None) -> Any:
    return output if model is None else model.model_validate(output)


def give_up(key: str, error: str, required: bool, default: Any) -> Any:
    if required:
        raise StepFailed(key, error)
    return default


def flatten(handles: tuple[ChildHandle | Iterable[ChildHandle], ...]) -> list[ChildHandle]:
    flat: list[ChildHandle] = []
    for item in handles:
        if isinstance(item, ChildHandle):
            flat.append(item)
        else:
            flat.extend(item)
    return flat


def uuid7_value() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = _random.getrandbits(74)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)
