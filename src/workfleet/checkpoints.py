"""Durable workflows' storage: the checkpoint records and the :class:`WorkflowStore` port.

A workflow run's history is its ``workflow_step`` rows, keyed by step key. Everything a
workflow execution writes about itself (a checkpoint, a consumed signal, started children, a
suspension) is *fenced* like every other write about a claimed run: it takes effect only while
the run is ``leased`` by the writing worker under the lease token of its claim, in the same
statement or transaction as its audit event. A write that finds the lease gone raises
:class:`LeaseLostError` and changes nothing.

PostgreSQL: :class:`workfleet.db.workflows.PgWorkflowStore`; in memory:
:class:`workfleet.testing.MemoryWorkflowStore`. The contract suite runs the same assertions
against both.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from workfleet.encoding import check_text_value, to_json
from workfleet.errors import WorkfleetError
from workfleet.models import Lease, RunStatus


class StepKind(enum.StrEnum):
    """What a checkpoint records (``workflow_step.kind``)."""

    STEP = "step"  # a step function's output (or its final failure)
    SLEEP = "sleep"  # a durable sleep and its wake-up time
    SIGNAL = "signal"  # a received signal's payload (or the wait's timeout)
    CHILDREN = "children"  # the ids of children started under one key
    GATHER = "gather"  # the outcomes of children waited for
    VALUE = "value"  # a deterministic value: now, uuid7, random
    PATCHES = "patches"  # the patch ids the run's code declared when it first ran


class StepStatus(enum.StrEnum):
    """``workflow_step.status``: done (succeeded or failed), or still waiting/retrying."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING = "waiting"  # a sleep or signal wait began; ``wake_at`` is its end or timeout
    RETRYING = "retrying"  # a step failed ``attempts`` times and retries at ``wake_at``

    @property
    def is_final(self) -> bool:
        return self in (StepStatus.SUCCEEDED, StepStatus.FAILED)


class LeaseLostError(WorkfleetError):
    """A fenced workflow write found the run no longer leased under this execution's token
    (cancelled, swept, or claimed again elsewhere). Nothing was written."""

    def __init__(self, run_id: uuid.UUID, status: RunStatus | None = None) -> None:
        super().__init__(f"run {run_id} is no longer held by this execution")
        self.run_id = run_id
        self.status = status


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One stored checkpoint (a ``workflow_step`` row). ``output`` is decoded JSON."""

    key: str
    name: str
    kind: StepKind
    status: StepStatus
    output: Any = None
    error: str | None = None
    attempts: int = 0
    wake_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One checkpoint to write (insert, or update of the same key).

    ``output_json`` is the output's JSON text (already checked: jsonb will take it).
    ``event`` is the audit event's data; None writes no event (deterministic values, the
    patch list: they are bookkeeping, not progress). ``started_at`` None means the database's
    now for a new row and keeps the stored one for an existing row.
    """

    key: str
    name: str
    kind: StepKind
    status: StepStatus
    output_json: str | None = None
    error: str | None = None
    attempts: int = 0
    wake_at: datetime | None = None
    event: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SignalMessage:
    """A signal taken from a run's mailbox."""

    id: int
    name: str
    payload: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SignalSent:
    """What sending a signal did: its id, and False when its idempotency key was seen."""

    id: int
    created: bool


@dataclass(frozen=True, slots=True)
class NewChild:
    """A child run to start. Its idempotency key is derived from the parent and ``key``, so
    starting it again (a replay) finds the same run."""

    key: str
    type: str
    payload_json: str
    priority: int | None = None
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class ChildState:
    """A child run as its parent sees it."""

    id: uuid.UUID
    type: str
    status: RunStatus
    result: Any = None
    error: str | None = None
    parent_id: uuid.UUID | None = None

    @property
    def finished(self) -> bool:
        return self.status.is_terminal


class SuspendResult(enum.StrEnum):
    """What a suspend found under the run's lock."""

    SUSPENDED = "suspended"  # pending until its wake-up time or a wake-up; lease given back
    READY = "ready"  # what it waits for already happened: nothing written, lease kept
    LOST = "lost"  # the lease was gone: nothing written


@dataclass(frozen=True, slots=True)
class Suspension:
    """Give the run's slot and lease back until ``wake_at`` or until what it waits for happens.

    ``kind`` becomes ``workflow_run.wait_kind``; ``signals`` are signal names, any one of which
    wakes the run; ``children`` are child runs that must all be final to wake it;
    ``checkpoints`` (waits that began in this execution: sleeps, signal timeouts, step retries)
    are written with the suspension.
    """

    wake_at: datetime
    kind: str
    signals: tuple[str, ...] = ()
    children: tuple[uuid.UUID, ...] = ()
    checkpoints: tuple[Checkpoint, ...] = ()
    event: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WaitRecord:
    """What a suspended workflow waits for besides its wake-up time (a ``workflow_wait`` row):
    ``kind`` "signal" (``target`` is the signal's name) or "child" (the child's run id)."""

    kind: str
    target: str
    created_at: datetime


MAX_SIGNAL_NAME_BYTES = 255  # the workflow_signal.name CHECK


def signal_json(name: str, payload: Any, idempotency_key: str | None) -> str:
    """The payload of signal ``name`` as JSON text, once the name, key and payload are known
    to be storable; ``ValueError`` saying what is not (a NUL character, a name out of size,
    a payload that is not JSON) before anything reaches the database."""
    if not isinstance(name, str):
        raise ValueError("a signal name must be text")
    size = len(name.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_SIGNAL_NAME_BYTES:
        raise ValueError(f"a signal name must be 1 to {MAX_SIGNAL_NAME_BYTES} bytes of text")
    check_text_value(name, "signal name")
    if idempotency_key is not None:
        check_text_value(idempotency_key, "idempotency key")
    try:
        return to_json(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the signal's payload cannot be stored: {exc}") from None


def child_idempotency_key(parent: uuid.UUID, key: str) -> str:
    """The idempotency key of the child started by ``parent`` under ``key``."""
    return f"workflow:{parent}:{key}"


TransactionFn = Callable[[Any], Awaitable[Any]]


@runtime_checkable
class WorkflowStore(Protocol):
    """What a workflow execution, the client and the CLI need from storage."""

    async def load_steps(self, run_id: uuid.UUID) -> list[StepRecord]:
        """Every checkpoint of the run, oldest first."""
        ...

    async def checkpoint(self, worker_id: str, lease: Lease, checkpoint: Checkpoint) -> None:
        """Write one checkpoint (insert or replace by key) with its event; fenced."""
        ...

    async def consume_signal(
        self, worker_id: str, lease: Lease, checkpoint: Checkpoint, name: str
    ) -> SignalMessage | None:
        """Take the oldest unconsumed signal ``name`` from the run's mailbox and record it as
        ``checkpoint`` (its output: the signal's payload); None when the mailbox has none.
        Fenced."""
        ...

    async def start_children(
        self, worker_id: str, lease: Lease, checkpoint: Checkpoint, children: Sequence[NewChild]
    ) -> list[uuid.UUID]:
        """Create the children (idempotently) and record their ids as ``checkpoint``; fenced.
        Returns the ids in input order."""
        ...

    async def child_states(self, ids: Sequence[uuid.UUID]) -> list[ChildState]:
        """The children's current rows, in input order (a missing child reads as cancelled)."""
        ...

    async def suspend(self, worker_id: str, lease: Lease, suspension: Suspension) -> SuspendResult:
        """Under the run's row lock: READY if an awaited signal is in the mailbox, all awaited
        children are final or ``wake_at`` passed; else write the suspension (row pending at
        ``wake_at`` with ``wait_kind``, wait rows, checkpoints, a ``suspended`` event)."""
        ...

    async def transact(
        self, worker_id: str, lease: Lease, fn: TransactionFn, finish: Callable[[Any], Checkpoint]
    ) -> Any:
        """Call ``fn(connection)`` inside a transaction that also writes ``finish(value)``: the
        step's effect and its checkpoint commit together or not at all. Fenced."""
        ...


@runtime_checkable
class WorkflowAdmin(Protocol):
    """Acting on and reading workflows from outside: the client, the CLI, the REST API."""

    async def send_signal(
        self, run_id: uuid.UUID, name: str, payload_json: str, idempotency_key: str | None
    ) -> SignalSent:
        """Put a signal in the run's mailbox (waking the run if it waits for it).
        :class:`~workfleet.errors.StoreDataError` when the run does not exist."""
        ...

    async def resume(self, run_id: uuid.UUID) -> int | None:
        """Make a failed workflow pending again, dropping its failed checkpoints (those steps
        run again; finished ones are kept). The number dropped; None when the run is not a
        failed run."""
        ...

    async def load_steps(self, run_id: uuid.UUID) -> list[StepRecord]:
        """Every checkpoint of the run, oldest first."""
        ...

    async def signals(self, run_id: uuid.UUID, limit: int = 100) -> list[dict[str, Any]]:
        """The run's mailbox, oldest first: consumed and waiting signals."""
        ...

    async def children(self, run_id: uuid.UUID, limit: int = 100) -> list[ChildState]:
        """The run's children, oldest first."""
        ...

    async def waits(self, run_id: uuid.UUID, limit: int = 100) -> list[WaitRecord]:
        """What the run waits for now (empty unless it is suspended on a signal or children)."""
        ...
