"""Domain values: runs, outcomes and the control-flow signals executors raise. No I/O here."""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


class RunStatus(enum.StrEnum):
    """The ``workflow_run.status`` values allowed by the table's CHECK constraint."""

    PENDING = "pending"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class EventType(enum.StrEnum):
    """The ``workflow_event.event_type`` values allowed by the table's CHECK constraint."""

    CREATED = "created"
    LEASED = "leased"
    STARTED = "started"
    HEARTBEAT = "heartbeat"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    CANCELLED = "cancelled"
    # durable workflows (migration 0006)
    STEP = "step"  # a checkpoint: a step finished, failed or will be retried
    SUSPENDED = "suspended"  # the workflow gave its slot and lease back until a wake-up
    SIGNALLED = "signalled"  # a waiting workflow took a signal from its mailbox
    RESUMED = "resumed"  # an operator resumed a failed workflow


class Outcome(enum.StrEnum):
    """How one execution attempt ended; also the ``outcome`` metric label."""

    SUCCEEDED = "succeeded"
    RETRIED = "retried"  # attempt consumed, back to pending with backoff
    FAILED = "failed"  # terminal
    SNOOZED = "snoozed"  # back to pending, no attempt consumed
    CANCELLED = "cancelled"  # the run was cancelled while it ran; nothing written
    LEASE_LOST = "lease_lost"  # another worker or the sweeper owns it now; nothing written
    TIMED_OUT = "timed_out"  # the executor exceeded its timeout (then retried or failed)
    RELEASED = "released"  # handed back on shutdown, no attempt consumed
    SUSPENDED = "suspended"  # a workflow waits (sleep, signal, children): slot and lease given back


# --- signals an executor raises -------------------------------------------------------------


class ControlSignal(Exception):  # noqa: N818 - these are signals, not errors
    """Base of the exceptions an executor raises to steer its run."""


class Fail(ControlSignal):
    """Fail the run now, whatever attempts remain. ``str(exc)`` becomes ``last_error``."""


# The longest run type, in UTF-8 bytes: the INSERT trigger refuses longer ones (migration 0005),
# check_new_run before anything is sent. No executor pattern matches longer types, and
# simple-workflow's type index breaks past about 2.7 KB.
MAX_TYPE_BYTES = 255

MAX_DELAY_SECONDS = 10 * 366 * 86_400.0  # ten years: far past any backoff, far inside SQL's range


def check_delay(after: float, what: str) -> float:
    """``after`` if it is a finite number of seconds in [0, ten years]; else ``ValueError``.

    A delay PostgreSQL cannot add to ``now()`` would fail the whole batched outcome write.
    """
    if not (isinstance(after, int | float) and 0 <= after <= MAX_DELAY_SECONDS):
        raise ValueError(
            f"{what}(after=...) must be between 0 and {MAX_DELAY_SECONDS:.0f} seconds, "
            f"got {after!r}"
        )
    return float(after)


class Retry(ControlSignal):
    """Consume an attempt and run again ``after`` seconds from now (default: the backoff policy)."""

    def __init__(self, reason: str = "retry requested", *, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = None if after is None else check_delay(after, "Retry")


class Snooze(ControlSignal):
    """Put the run back to pending for ``after`` seconds without consuming an attempt."""

    def __init__(self, after: float, reason: str = "snoozed") -> None:
        super().__init__(reason)
        self.after = check_delay(after, "Snooze")


class Suspended(ControlSignal):
    """A durable workflow gave its slot and lease back until ``wake_at`` (it already wrote its
    suspension, fenced, with its event). Raised by the workflow runtime, never by plugin code."""

    def __init__(self, wake_at: datetime, kind: str) -> None:
        super().__init__(f"waiting ({kind}) until {wake_at.isoformat()}")
        self.wake_at = wake_at
        self.kind = kind


# --- rows and writes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lease:
    """What every write about a claimed run must match: the run and the token of its claim.

    The token counts the run's claims (0 for the first), so two executions of one run by the
    same worker at the same attempt (after a snooze or a release) never share a lease.
    """

    run_id: uuid.UUID
    token: int
    # the id as text when the claim already made it (outcome writes use it); not compared
    key: str = field(default="", compare=False, repr=False)


@dataclass(slots=True)
class ClaimedRun:
    """A run this worker holds a lease on. Treat it as read-only.

    ``attempt`` counts the failed attempts before this one (the row's column); ``token`` is the
    lease token granted by this claim, ``lease`` the two together. ``payload_error`` is set,
    and ``payload`` is None, when the stored payload could not be decoded (the run then fails
    at once with that error). ``key`` is the id as text (logs, task names and outcome writes
    use it; formatting a UUID costs more than the rest of a no-op run's claim bookkeeping).

    Not frozen, unlike the other models: a frozen dataclass sets each field through
    ``object.__setattr__``, and one of these is built for every run claimed.
    """

    id: uuid.UUID
    type: str
    payload: Any
    attempt: int
    max_attempts: int
    priority: int
    run_at: datetime
    created_at: datetime
    claimed_at: datetime  # database clock at claim time
    token: int = 0
    payload_error: str | None = None
    lease: Lease = field(init=False)

    def __post_init__(self) -> None:
        self.lease = Lease(self.id, self.token, str(self.id))

    @property
    def key(self) -> str:
        return self.lease.key

    @property
    def queue_wait(self) -> timedelta:
        return self.claimed_at - self.run_at


@dataclass(slots=True)
class Completion:
    """One outcome write, batched by the completer. Build it with the named constructors, and
    treat it as read-only (not frozen only because one is built per run, see ClaimedRun).

    ``status`` is the row's new status (pending, succeeded or failed); ``consume_attempt`` says
    whether ``attempt`` is incremented; ``delay`` (seconds from the database's now) sets
    ``run_at`` when the run goes back to pending; ``wake`` announces the run to every worker
    (a NOTIFY), for runs handed back runnable now.
    """

    lease: Lease
    status: RunStatus
    event: EventType
    consume_attempt: bool
    delay: float | None = None
    result_json: str | None = None
    error: str | None = None
    event_data: dict[str, Any] = field(default_factory=dict)
    wake: bool = False

    @classmethod
    def succeeded(cls, lease: Lease, result_json: str, data: dict[str, Any]) -> Completion:
        """Done: the row's ``result`` becomes ``result_json``."""
        return cls(
            lease, RunStatus.SUCCEEDED, EventType.SUCCEEDED, False, None, result_json, None, data
        )

    @classmethod
    def retry(cls, lease: Lease, delay: float, error: str, data: dict[str, Any]) -> Completion:
        """An attempt failed: consume it and run again ``delay`` seconds from now."""
        return cls(lease, RunStatus.PENDING, EventType.RETRIED, True, delay, None, error, data)

    @classmethod
    def failed(cls, lease: Lease, error: str, data: dict[str, Any]) -> Completion:
        """Failed for good (the attempt is consumed)."""
        return cls(lease, RunStatus.FAILED, EventType.FAILED, True, None, None, error, data)

    @classmethod
    def snoozed(cls, lease: Lease, delay: float, data: dict[str, Any]) -> Completion:
        """Back to pending ``delay`` seconds from now without consuming an attempt."""
        return cls(lease, RunStatus.PENDING, EventType.RETRIED, False, delay, None, None, data)

    @classmethod
    def released(cls, lease: Lease, worker_id: str) -> Completion:
        """Handed back on shutdown: pending and runnable now, no attempt consumed, announced.

        A durable workflow's suspension will be the same write with a wake-up time and its own
        constructor beside this one.
        """
        data = {"reason": "released", "worker_id": worker_id}
        return cls(lease, RunStatus.PENDING, EventType.RETRIED, False, 0.0, None, None, data, True)


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """What a lease extension found: whether we still hold the run, and its current status."""

    run_id: uuid.UUID
    held: bool
    status: RunStatus | None  # None when the row no longer exists


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to enqueue. ``None`` fields take the table defaults."""

    type: str
    payload: Any = None
    priority: int | None = None
    run_at: datetime | None = None
    delay: float | None = None
    idempotency_key: str | None = None
    max_attempts: int | None = None


def check_new_run(run: NewRun) -> NewRun:
    """Return ``run`` if the database would accept it; else raise ``ValueError`` saying why.

    Payload errors name the type, never the payload's values.
    """
    if not isinstance(run.type, str) or not run.type.strip():
        raise ValueError("run type must be a non-empty string")
    size = len(run.type.encode("utf-8", "surrogatepass"))
    if size > MAX_TYPE_BYTES:
        raise ValueError(
            f"run type is {size} bytes long; the limit is {MAX_TYPE_BYTES} bytes (UTF-8)"
        )
    if run.run_at is not None and run.delay is not None:
        raise ValueError(f"{run.type}: give run_at or delay, not both")
    if run.run_at is not None and run.run_at.tzinfo is None:
        raise ValueError(f"{run.type}: run_at must be timezone-aware")
    if run.delay is not None and not (math.isfinite(run.delay) and run.delay >= 0):
        raise ValueError(f"{run.type}: delay must be a finite number of seconds >= 0")
    if run.max_attempts is not None and run.max_attempts < 1:
        raise ValueError(f"{run.type}: max_attempts must be at least 1")
    for name, text in (("run type", run.type), ("idempotency key", run.idempotency_key)):
        if text is not None and "\x00" in text:
            raise ValueError(f"{name} contains a NUL character, which PostgreSQL text refuses")
    try:
        encoded = json.dumps(run.payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        # TypeError/ValueError messages name the offending Python type or "nan", not the data
        raise ValueError(f"{run.type}: payload is not JSON-serialisable: {exc}") from None
    if "\\u0000" in encoded and _JSON_NUL.search(encoded):
        raise ValueError(
            f"{run.type}: payload contains a NUL character (\\u0000), which jsonb cannot store"
        )
    if "\\ud" in encoded:
        try:
            json.dumps(json.loads(encoded), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"{run.type}: payload contains a lone UTF-16 surrogate, which jsonb cannot store"
            ) from None
    return run


# a JSON "\u0000" escape that is not an escaped backslash followed by "u0000"
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


@dataclass(frozen=True, slots=True)
class Enqueued:
    """Result of an enqueue: the run id and whether this call created it (False: duplicate key)."""

    id: uuid.UUID
    created: bool


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A full ``workflow_run`` row as read by clients and the CLI."""

    id: uuid.UUID
    type: str
    payload: Any
    status: RunStatus
    priority: int
    run_at: datetime
    idempotency_key: str | None
    attempt: int
    max_attempts: int
    leased_by: str | None
    lease_until: datetime | None
    last_error: str | None
    result: Any
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True, slots=True)
class Event:
    """One ``workflow_event`` row."""

    id: int
    run_id: uuid.UUID
    event_type: EventType
    data: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A ``workflow_registry`` row this worker upserts at start."""

    workflow_name: str
    description: str | None = None
    runtime: str = "python"
