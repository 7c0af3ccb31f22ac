"""The plugin author's API: :class:`Plugin`, the ``@plugin.executor`` decorator, :class:`Run`.

A plugin package exposes a :class:`Plugin` through the entry-point group ``workfleet.plugins``::

    plugin = workfleet.Plugin("billing")

    @plugin.executor("billing.invoice.v1", payload=InvoicePayload, timeout=60, max_attempts=5)
    async def invoice(run: workfleet.Run[InvoicePayload]) -> dict[str, str]: ...

Async executors receive a :class:`Run`; sync executors run in a thread and receive a
:class:`SyncRun`, whose ``heartbeat`` blocks instead of being awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

import structlog
from pydantic import BaseModel

from workfleet.patterns import TypePattern
from workfleet.retry import Backoff

P = TypeVar("P")
StopReason = Literal["cancelled", "lease_lost", "shutdown"]
F = TypeVar("F", bound=Callable[..., Any])


class LeaseHandle(Protocol):
    """What a run needs from the runtime to extend its own lease."""

    async def extend(self, seconds: float) -> bool:
        """Extend the lease by ``seconds``; False when the lease is no longer held."""
        ...


class _RunBase(Generic[P]):
    __slots__ = (
        "_handle",
        "_log",
        "_log_source",
        "attempt",
        "id",
        "max_attempts",
        "payload",
        "raw_payload",
        "stop_reason",
        "type",
    )

    def __init__(
        self,
        *,
        id: uuid.UUID,
        type: str,
        payload: P,
        raw_payload: Any,
        attempt: int,
        max_attempts: int,
        handle: LeaseHandle,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.id = id
        self.type = type
        self.payload = payload
        self.raw_payload = raw_payload
        self.attempt = attempt  # 1 on the first try, 2 on the first retry, ...
        self.max_attempts = max_attempts
        self._handle = handle
        self._log_source = log
        self._log: structlog.typing.FilteringBoundLogger | None = None
        # why ``cancelled`` was set: "cancelled" (by a user), "lease_lost" (the run is someone
        # else's now) or "shutdown" (this worker is stopping; the run will be released and run
        # again elsewhere, so it is not a failure); None while no stop was requested
        self.stop_reason: StopReason | None = None

    @property
    def worker_stopping(self) -> bool:
        """True when ``cancelled`` was set because this worker is shutting down: stop at the
        next safe point; whatever the executor then raises or returns (but a result), the run
        is released — pending again, no attempt consumed — not failed."""
        return self.stop_reason == "shutdown"

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger:
        """``log`` bound to this run's id, type and attempt (bound on first use: most runs
        never log, and binding costs more than the rest of a no-op run's bookkeeping)."""
        if self._log is None:
            self._log = self._log_source.bind(
                run_id=str(self.id), type=self.type, attempt=self.attempt
            )
        return self._log

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


class Run(_RunBase[P]):
    """One execution of a run, handed to an async executor.

    ``cancelled`` is set when the executor should stop at its next safe point: the run was
    cancelled, its lease was lost, or this worker is shutting down (``stop_reason`` says which;
    ``worker_stopping`` is the last case). After the worker's grace period its task is cancelled
    anyway.
    """

    __slots__ = ("cancelled",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cancelled = asyncio.Event()

    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    async def heartbeat(self, seconds: float) -> None:
        """Extend this run's lease to at least ``seconds`` from now and audit it.

        Automatic heartbeats already keep the lease alive; call this before a step that may
        outlast the worker's lease. Sets ``cancelled`` when the lease is no longer held.
        """
        if not await self._handle.extend(seconds):
            self.cancelled.set()


class SyncRun(_RunBase[P]):
    """One execution of a run, handed to a sync executor running in a worker thread."""

    __slots__ = ("_loop", "cancelled")

    def __init__(self, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loop = loop
        self.cancelled = threading.Event()

    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    def heartbeat(self, seconds: float) -> None:
        """Blocking form of :meth:`Run.heartbeat`, for executors that run in a thread."""
        future = asyncio.run_coroutine_threadsafe(self._handle.extend(seconds), self._loop)
        if not future.result():
            self.cancelled.set()


AsyncExecutorFn = Callable[[Run[Any]], Awaitable[Any]]
SyncExecutorFn = Callable[[SyncRun[Any]], Any]


@dataclass(frozen=True, slots=True)
class ExecutorSpec:
    """One registered executor and its policies (None: the worker's defaults)."""

    pattern: TypePattern
    fn: Callable[..., Any]
    is_async: bool
    plugin: str
    payload_model: type[BaseModel] | None = None
    timeout: float | None = None
    max_attempts: int | None = None
    backoff: Backoff | None = None
    description: str | None = None
    # a durable workflow: ``fn`` takes a workfleet.workflow.Workflow and is replayed over its
    # checkpoints; ``patches`` are the wf.patched() ids its code knows (see docs/workflows.md)
    workflow: bool = False
    patches: tuple[str, ...] = ()

    @property
    def qualname(self) -> str:
        return f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"


class Plugin:
    """A named set of executors, published through the ``workfleet.plugins`` entry points."""

    def __init__(
        self,
        name: str,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        if not name:
            raise ValueError("a plugin needs a name")
        self.name = name
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.executors: list[ExecutorSpec] = []

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, executors={[str(e.pattern) for e in self.executors]})"

    def executor(
        self,
        type_pattern: str,
        *,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
        description: str | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function for ``type_pattern`` (exact type or ``prefix.%``).

        ``payload`` validates and parses the run's payload; invalid payloads fail the run at
        once. ``max_attempts`` overrides the row's value; ``timeout`` is in seconds.
        """
        return self._register(
            type_pattern, payload, timeout, max_attempts, backoff, description, False, ()
        )

    def workflow(
        self,
        type_pattern: str,
        *,
        payload: type[BaseModel] | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
        description: str | None = None,
        patches: tuple[str, ...] | list[str] = (),
    ) -> Callable[[F], F]:
        """Register the decorated ``async def f(wf: Workflow[P])`` as a durable workflow.

        The function is replayed over its checkpoints on every execution: finished steps
        return their stored output without running again. ``timeout`` bounds one execution
        (between two waits), ``max_attempts``/``backoff`` apply to exceptions the workflow's
        own code raises outside steps (steps have their own retry policy). ``patches`` lists the
        ids the code passes to ``wf.patched()``.
        """
        return self._register(
            type_pattern, payload, timeout, max_attempts, backoff, description, True, patches
        )

    def _register(
        self,
        type_pattern: str,
        payload: type[BaseModel] | None,
        timeout: float | None,
        max_attempts: int | None,
        backoff: Backoff | None,
        description: str | None,
        workflow: bool,
        patches: tuple[str, ...] | list[str],
    ) -> Callable[[F], F]:
        pattern = TypePattern.parse(type_pattern)
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout for {type_pattern!r} must be positive")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts for {type_pattern!r} must be at least 1")
        if any(e.pattern == pattern for e in self.executors):
            raise ValueError(f"plugin {self.name!r} registers {type_pattern!r} twice")
        if len(set(patches)) != len(patches) or not all(isinstance(p, str) and p for p in patches):
            raise ValueError(f"patches for {type_pattern!r} must be distinct non-empty strings")

        def register(fn: F) -> F:
            if workflow and not inspect.iscoroutinefunction(fn):
                raise TypeError(f"workflow {type_pattern!r} must be an async function")
            doc = inspect.getdoc(fn)
            self.executors.append(
                ExecutorSpec(
                    pattern=pattern,
                    fn=fn,
                    is_async=inspect.iscoroutinefunction(fn),
                    plugin=self.name,
                    payload_model=payload,
                    timeout=timeout if timeout is not None else self.timeout,
                    max_attempts=max_attempts if max_attempts is not None else self.max_attempts,
                    backoff=backoff if backoff is not None else self.backoff,
                    description=description or (doc.splitlines()[0] if doc else None),
                    workflow=workflow,
                    patches=tuple(patches),
                )
            )
            return fn

        return register
