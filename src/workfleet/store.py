"""Every port of workfleet, in one place: what the runtime, the client, the CLI and the REST API
need from the outside world, as :class:`typing.Protocol` classes.

- :class:`RunQueue` — the worker's hot path (claim, outcomes, leases, the expired-lease sweep)
  and the producers' enqueue. PostgreSQL: :class:`workfleet.db.store.PgStore`; in memory:
  :class:`workfleet.testing.MemoryStore`. The contract suite (``tests/contract``) runs the same
  assertions against both.
- :class:`RunReads` and :class:`RunOperations` — reading runs (one, a filtered keyset page,
  capped counts, the audit trail) and acting on them (cancel, redrive), for the client, the CLI
  and the API. :class:`workfleet.operations.Operations` is their one user-facing façade.
- :class:`RunBatches` — bounded selections by filter or id and the bulk actions on them.
- :class:`StatusReads` and :class:`ScheduleAdmin` — the status summary and managing cron
  schedules, for the CLI and the API (through :class:`~workfleet.operations.Operations` too).
- :class:`MaintenanceStore` and :class:`ScheduleStore` — the worker's side loops (retention,
  live workers, pending gauges) and firing cron schedules.
- :class:`Observer` — what the runtime reports as it works (metrics, tests' signals).

Everything but :class:`RunQueue` is implemented on PostgreSQL only and contract-tested there.
Every write about a claimed run is *fenced*: it changes a row only while the row is ``leased``
by the writing worker under the lease token its claim granted (:class:`Lease`).
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from workfleet.models import (
    ClaimedRun,
    Completion,
    Enqueued,
    Event,
    HeartbeatResult,
    Lease,
    NewRun,
    Outcome,
    RegistryEntry,
    RunRecord,
    RunStatus,
)
from workfleet.patterns import TypePattern


@dataclass(frozen=True, slots=True)
class ClaimFilter:
    """Which types a lease loop may claim: exact names plus escaped ``LIKE`` patterns."""

    exact: tuple[str, ...]
    likes: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.exact and not self.likes


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What the expired-lease sweep did: runs back to pending, and runs failed for good."""

    requeued: int
    failed: int


# --- the hot path ------------------------------------------------------------------------------


class SentClaim(Protocol):
    """A claim already sent (:meth:`RunQueue.claim_now`): await it once for its runs, or
    :meth:`abandon` it."""

    def __await__(self) -> Generator[Any, None, list[ClaimedRun]]:
        """The claimed runs, as :meth:`RunQueue.claim` returns them; raises as it raises."""
        ...

    def abandon(self) -> None:
        """Never to be awaited (its loop was cancelled): whatever it leased stays leased until
        the lease expires, as with a claim cancelled on the wire."""
        ...


@runtime_checkable
class RunQueue(Protocol):
    """The lease protocol and enqueue. All times come from the database clock."""

    async def claim(
        self,
        worker_id: str,
        filt: ClaimFilter,
        limit: int,
        lease_seconds: float,
        *,
        waits: bool = True,
    ) -> list[ClaimedRun]:
        """Lease up to ``limit`` runnable runs (``FOR UPDATE SKIP LOCKED``), each under a new
        lease token; write their ``leased`` and ``started`` events.

        Runnable: pending, due, not deleted, type enabled. With ``waits`` false, workflows
        whose wait fell due (a ``wait_kind`` still set and ``run_at`` passed: a deadline, not a
        signal or a child, which make the run ready) are left for a later claim with ``waits``
        true; the caller must make one whenever such a deadline can have passed.
        """
        ...

    def claim_now(
        self,
        worker_id: str,
        filt: ClaimFilter,
        limit: int,
        lease_seconds: float,
        *,
        waits: bool = True,
    ) -> SentClaim | None:
        """:meth:`claim`, sent at once from a synchronous callback (a NOTIFY's) when that needs
        no waiting, such as a connection to take or a statement to prepare; the caller must
        await or abandon what it returns. None: nothing was sent (call :meth:`claim`)."""
        ...

    async def next_due(self, filt: ClaimFilter) -> float | None:
        """Seconds until the earliest *future* queued run matching ``filt`` is due.

        Runs due now are ignored (an unclaimed one is row-locked by another worker) and so are
        types disabled in the registry; None when there is no such run.
        """
        ...

    async def complete_many(
        self, worker_id: str, completions: Sequence[Completion]
    ) -> set[uuid.UUID]:
        """Apply outcomes in one batch; return the ids whose write took effect (fenced).

        Raises :class:`~workfleet.errors.StoreDataError` when a value of the batch is refused
        (the caller then writes its rows one by one).
        """
        ...

    async def heartbeat_many(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[HeartbeatResult]:
        """Extend held leases to at least now + ``lease_seconds``; report each lease's fate.

        One result per lease asked about, in no particular order (match them by run id).
        """
        ...

    async def extend_lease(self, worker_id: str, lease: Lease, seconds: float) -> HeartbeatResult:
        """An executor's explicit heartbeat: extend one lease and write a ``heartbeat`` event."""
        ...

    async def reclaim_expired(self, limit: int = 1000) -> SweepResult:
        """Expired leases count as a failed attempt: back to pending, or failed if exhausted."""
        ...

    async def enqueue_many(self, runs: Sequence[NewRun]) -> list[Enqueued]:
        """Insert runs in one round trip; a duplicate idempotency key returns the existing id."""
        ...

    async def upsert_registry(self, entries: Sequence[RegistryEntry]) -> None:
        """Register executable types; never changes ``is_enabled`` of a live row (a soft-deleted
        row comes back enabled, as a new registration would)."""
        ...


# --- reads and operations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs a listing or a count selects. Every field narrows; the default is all runs.

    ``types`` are type patterns (exact or ``prefix.%``, matched literally); ``payload`` selects
    runs whose payload contains it (jsonb ``@>``); ``error`` is a case-insensitive substring of
    ``last_error``; the time bounds apply to ``created_at`` (``since`` inclusive, ``until``
    exclusive). Soft-deleted runs are left out.
    """

    statuses: tuple[RunStatus, ...] = ()
    types: tuple[TypePattern, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    payload: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True, order=True)
class RunCursor:
    """Where a keyset page ends: newest first, so the next page has older (created_at, id)."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """An opaque, URL-safe token for APIs and the CLI."""
        return f"{self.created_at.isoformat()}_{self.id}"

    @classmethod
    def decode(cls, token: str) -> RunCursor:
        """Parse :meth:`encode`'s output; ``ValueError`` ("not a page cursor") for anything else."""
        stamp, sep, run_id = token.rpartition("_")
        try:
            moment = datetime.fromisoformat(stamp)
            if not sep or moment.tzinfo is None:
                raise ValueError(token)
            return cls(moment, uuid.UUID(run_id))
        except ValueError:
            raise ValueError(f"not a page cursor: {token!r}") from None


MAX_PAGE = 1000  # the most runs one page of query_runs may ask for


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs, newest first; ``next`` is None on the last page."""

    runs: list[RunRecord]
    next: RunCursor | None = None


@dataclass(frozen=True, slots=True)
class CappedCount:
    """A count that stops at a cap, so counting never scans a whole table: ``at_least`` is
    True when there are more than ``count`` (= the cap)."""

    count: int
    at_least: bool = False


class RunReads(Protocol):
    """Reading runs; never payload contents unless the caller asked for the run."""

    async def get(self, run_id: uuid.UUID) -> RunRecord | None:
        """The run's row, or None."""
        ...

    async def events(self, run_id: uuid.UUID) -> list[Event]:
        """The run's audit trail, oldest first."""
        ...

    async def list_runs(
        self, *, status: RunStatus | None = None, type_like: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Newest runs first, optionally filtered (``type_like`` is an escaped LIKE pattern)."""
        ...

    async def query_runs(
        self, query: RunQuery, *, limit: int = 50, after: RunCursor | None = None
    ) -> RunPage:
        """A keyset page of the runs ``query`` selects, newest first, after ``after``;
        ``ValueError`` unless 1 <= ``limit`` <= :data:`MAX_PAGE`."""
        ...

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> CappedCount:
        """How many runs ``query`` selects, counting no further than ``cap``."""
        ...

    async def db_now(self) -> datetime:
        """The database's current time."""
        ...


class RunOperations(Protocol):
    """Acting on runs as an operator or producer would."""

    async def cancel(self, run_id: uuid.UUID) -> bool:
        """Cancel a pending or leased run; False when it is missing or already finished."""
        ...

    async def redrive(
        self, run_id: uuid.UUID, from_statuses: Sequence[RunStatus] = (RunStatus.FAILED,)
    ) -> bool:
        """Make a failed run pending again with fresh attempts; False when not redrivable."""
        ...


MAX_BULK = 1000  # the most runs one bulk action may select


class RunBatches(Protocol):
    """Selecting runs by filter or by id, and acting on many at once (bulk cancel and
    redrive, offset listings). Every statement is bounded by its ``limit``; ids come back
    newest first (``created_at DESC, id DESC``), as :meth:`RunReads.query_runs` pages them."""

    async def match_ids(
        self,
        query: RunQuery,
        *,
        ids: Sequence[uuid.UUID] | None = None,
        limit: int,
        offset: int = 0,
    ) -> list[uuid.UUID]:
        """Ids of the runs ``query`` selects (and, given ``ids``, only among those), newest
        first, skipping ``offset`` of them, at most ``limit`` (up to ``MAX_BULK + 1``, so a
        caller can tell that a selection of ``MAX_BULK`` was cut short)."""
        ...

    async def id_for_key(self, key: str) -> uuid.UUID | None:
        """The (not deleted) run holding idempotency key ``key``, or None."""
        ...

    async def get_many(self, ids: Sequence[uuid.UUID]) -> list[RunRecord]:
        """The rows of ``ids`` that exist, in the order of ``ids``."""
        ...

    async def cancel_many(self, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Cancel those of ``ids`` that are pending or leased, in one statement; the ids done."""
        ...

    async def redrive_many(
        self, ids: Sequence[uuid.UUID], from_statuses: Sequence[RunStatus] = (RunStatus.FAILED,)
    ) -> list[uuid.UUID]:
        """Redrive (as :meth:`RunOperations.redrive`) those of ``ids`` in ``from_statuses``, in
        one statement with their events and one wake-up per type; the ids done."""
        ...


@dataclass(frozen=True, slots=True)
class PrefixStats:
    """One type pattern's queue at a glance; every count stops at the cap it was asked with
    (``count == cap`` reads "at least")."""

    prefix: str
    pending: int
    due: int
    leased: int
    oldest_pending_age_seconds: float
    succeeded_recent: int
    failed_recent: int
    window_seconds: float
    cap: int


class StatsReads(Protocol):
    """Per-prefix depth and rates from bounded, indexed statements (the API's ``/stats``)."""

    async def prefix_stats(
        self, patterns: Sequence[TypePattern], *, window_seconds: float, cap: int
    ) -> list[PrefixStats]:
        """One :class:`PrefixStats` per pattern, labelled ``str(pattern)``, sorted by label."""
        ...

    async def known_prefixes(self) -> list[str]:
        """First segments of the registered types (``billing`` for ``billing.invoice.v1``)."""
        ...


# --- status and schedules, as the CLI and the API manage them ----------------------------------

# A workfleet worker touches its row every sweep: seen this recently, it is live.
LIVE_WITHIN = 30.0
# Another poller that ran runs this recently still serves their types (`workfleet status`).
ACTIVE_WITHIN = 900.0


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A live (or recently live) workfleet worker and the type patterns it executes."""

    worker_id: str
    hostname: str
    pid: int
    version: str
    patterns: list[str]
    started_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class TypeCount:
    type: str
    status: RunStatus
    count: int


@dataclass(frozen=True, slots=True)
class OldestPending:
    """A type's due pending runs and how long the oldest has been due."""

    type: str
    age_seconds: float
    due: int


@dataclass(frozen=True, slots=True)
class OtherWorker:
    """A ``leased_by`` value on recent runs that names no workfleet worker: another poller
    (simple-workflow's Go or Python workers) serving the same schema. ``runs`` counts the runs
    the bounded look saw, not every run it ever did."""

    worker_id: str
    types: list[str]
    runs: int
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class StatusSummary:
    """What ``workfleet status`` shows. Never contains payloads.

    ``unserved_types`` are due pending types that no live workfleet worker has a pattern for
    and no other worker ran within ``other_workers_within`` seconds.
    """

    counts: list[TypeCount]
    oldest_pending: list[OldestPending]
    workers: list[WorkerRecord]
    unserved_types: list[str]
    other_workers: list[OtherWorker]
    other_workers_within: float


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A ``workflow_schedule`` row; ``problem`` says why workfleet cannot fire it (its cron
    expression or timezone, as other tools may write what workfleet does not accept)."""

    id: uuid.UUID
    type: str
    payload: Any
    schedule: str
    timezone: str
    next_run_at: datetime
    last_run_at: datetime | None
    enabled: bool
    priority: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    problem: str | None = None


class StatusReads(Protocol):
    """The fleet at a glance: counts, the oldest due runs, who serves what. Never payloads."""

    async def status_summary(
        self, live_within: float = LIVE_WITHIN, active_within: float = ACTIVE_WITHIN
    ) -> StatusSummary:
        """Counts by type and status, each type's oldest due pending run, workers seen within
        ``live_within`` seconds, other workers active within ``active_within``, and the due
        pending types none of them serves."""
        ...

    async def live_workers(self, live_within: float = LIVE_WITHIN) -> list[WorkerRecord]:
        """workfleet workers seen within ``live_within`` seconds, by id."""
        ...


class ScheduleAdmin(Protocol):
    """Managing cron schedules (``workflow_schedule``); soft-deleted ones are left out."""

    async def add_schedule(
        self,
        run_type: str,
        cron: str,
        timezone: str = "UTC",
        payload: Any = None,
        priority: int = 100,
        max_attempts: int = 3,
    ) -> uuid.UUID:
        """Validate (``ValueError`` saying why) and insert a schedule; a descriptor such as
        ``@daily`` is stored as its 5 fields; the first fire time follows the database's now."""
        ...

    async def get_schedule(self, schedule_id: uuid.UUID) -> ScheduleRecord | None: ...
    async def list_schedules(self, include_deleted: bool = False) -> list[ScheduleRecord]:
        """Oldest first, each with its ``problem`` (None for a schedule workfleet can fire)."""
        ...

    async def set_schedule_enabled(self, schedule_id: uuid.UUID, enabled: bool) -> bool:
        """Pause or resume; resuming fires next after now (no catch-up), and raises
        ``ValueError`` for a schedule whose cron or timezone cannot fire. False: no such
        schedule."""
        ...

    async def delete_schedule(self, schedule_id: uuid.UUID) -> bool:
        """Soft-delete (and disable); False when there is no such schedule."""
        ...


# --- side loops ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingStat:
    """Runnable runs of one lease-loop prefix and how long the oldest has been due."""

    prefix: str
    pending: int
    oldest_age_seconds: float
    # waiting workflows of the prefix by wait kind (sleep, signal, children, retry), capped
    waiting: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class FiredRun:
    """One schedule firing: ``run_id`` is None when that fire time had already created its run."""

    schedule_id: uuid.UUID
    type: str
    fire_at: datetime
    run_id: uuid.UUID | None


class MaintenanceStore(Protocol):
    """The worker's side loops: live workers, retention, the pending gauges."""

    async def register_worker(
        self, worker_id: str, hostname: str, pid: int, version: str, patterns: Sequence[str]
    ) -> None: ...
    async def touch_worker(self, worker_id: str) -> None: ...
    async def remove_worker(self, worker_id: str) -> None: ...
    async def prune_workers(self, older_than: float) -> int: ...
    async def run_retention(
        self,
        succeeded_days: float,
        cancelled_days: float,
        failed_days: float,
        batch: int = 1000,
    ) -> int:
        """Delete finished runs past their age in batches; 0 when another worker is doing it.

        A run the database refuses to delete (a user's table references it) is skipped,
        logged once per pass and counted as a bad row; the pass goes on past it."""
        ...

    async def pending_by_prefix(self, patterns: Sequence[TypePattern]) -> list[PendingStat]:
        """Runnable runs per pattern (the claim's eligibility), labelled ``str(pattern)``."""
        ...


class ScheduleStore(Protocol):
    """Firing cron schedules (the ticker's side of ``workflow_schedule``)."""

    async def tick_schedules(self) -> list[FiredRun]:
        """Fire every due schedule once; nothing when another worker holds the ticker's lock.

        A schedule that cannot fire (its cron, timezone or run is refused) is disabled with a
        logged reason and counted as a bad row; the others still fire."""
        ...

    async def seconds_until_next_schedule(self) -> float | None: ...


# --- the observer ----------------------------------------------------------------------------

WakeSource = Literal["notify", "poll", "schedule", "slot", "retry", "wait", "start"]


class Observer(Protocol):
    """Runtime events, for metrics and tests' signals; cheap, and they never raise."""

    def claimed(self, prefix: str, count: int, seconds: float) -> None: ...
    def claim_failed(self, prefix: str) -> None: ...
    def run_started(self, prefix: str, run_type: str, queue_wait: float) -> None: ...
    def run_finished(
        self, prefix: str, run_type: str, outcome: Outcome, seconds: float
    ) -> None: ...
    def woke(self, prefix: str, source: WakeSource) -> None: ...
    def in_flight(self, prefix: str, count: int, concurrency: int) -> None: ...
    def heartbeat(self, count: int) -> None: ...
    def lease_lost(self, prefix: str) -> None: ...
    def listener(self, connected: bool, reconnect: bool) -> None: ...
    def bad_row(self, statement: str) -> None:
        """A row a batch statement could not apply was skipped or failed on its own."""
        ...

    def drained(self) -> None: ...

    # durable workflows: labels are the run's type and bounded words, never keys or ids
    def step_finished(self, run_type: str, kind: str, outcome: str) -> None:
        """A checkpoint was written: ``outcome`` is succeeded, failed or retried."""
        ...

    def workflow_suspended(self, run_type: str, kind: str) -> None: ...
    def signal_taken(self, run_type: str, waited_seconds: float) -> None: ...
    def children_gathered(self, run_type: str, count: int) -> None: ...
