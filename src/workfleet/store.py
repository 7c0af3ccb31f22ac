"""The storage seam: everything the runtime and the client need from the database.

Two implementations honour it: :class:`workfleet.db.store.PgStore` (psycopg, SQL in ``.sql``
files) and :class:`workfleet.testing.MemoryStore` (in memory, for fast unit tests). The contract
suite in ``tests/contract`` runs the same assertions against both.

Every method that writes about a claimed run is *fenced*: it changes a row only while the row is
``leased`` by ``worker_id`` at the attempt the lease was granted (:class:`Lease`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from workfleet.models import (
    ClaimedRun,
    Completion,
    Enqueued,
    Event,
    HeartbeatResult,
    Lease,
    NewRun,
    RegistryEntry,
    RunRecord,
    RunStatus,
)


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


@runtime_checkable
class RunStore(Protocol):
    """Storage operations on runs. All times come from the database clock."""

    async def claim(
        self, worker_id: str, filt: ClaimFilter, limit: int, lease_seconds: float
    ) -> list[ClaimedRun]:
        """Lease up to ``limit`` eligible runs (``FOR UPDATE SKIP LOCKED``); write events."""
        ...

    async def next_due(self, filt: ClaimFilter) -> float | None:
        """Seconds until the earliest *future* pending run matching ``filt`` is due.

        Runs due now are ignored (an unclaimed one is row-locked by another worker) and so are
        types disabled in the registry; None when there is no such run.
        """
        ...

    async def complete_many(
        self, worker_id: str, completions: Sequence[Completion]
    ) -> set[uuid.UUID]:
        """Apply outcomes in one batch; return the ids whose write took effect (fenced)."""
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

    async def release_many(self, worker_id: str, leases: Sequence[Lease]) -> set[uuid.UUID]:
        """Hand held leases back as pending, runnable now, without consuming an attempt."""
        ...

    async def reclaim_expired(self, limit: int = 1000) -> SweepResult:
        """Expired leases count as a failed attempt: back to pending, or failed if exhausted."""
        ...

    async def enqueue_many(self, runs: Sequence[NewRun]) -> list[Enqueued]:
        """Insert runs in one round trip; a duplicate idempotency key returns the existing id."""
        ...

    async def get(self, run_id: uuid.UUID) -> RunRecord | None:
        """The run's row, or None."""
        ...

    async def list_runs(
        self, *, status: RunStatus | None = None, type_like: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Newest runs first, optionally filtered (``type_like`` is an escaped LIKE pattern)."""
        ...

    async def events(self, run_id: uuid.UUID) -> list[Event]:
        """The run's audit trail, oldest first."""
        ...

    async def cancel(self, run_id: uuid.UUID) -> bool:
        """Cancel a pending or leased run; False when it is missing or already finished."""
        ...

    async def redrive(
        self, run_id: uuid.UUID, from_statuses: Sequence[RunStatus] = (RunStatus.FAILED,)
    ) -> bool:
        """Make a failed run pending again with fresh attempts; False when not redrivable."""
        ...

    async def upsert_registry(self, entries: Sequence[RegistryEntry]) -> None:
        """Register executable types; never changes ``is_enabled`` of a live row (a soft-deleted
        row comes back enabled, as a new registration would)."""
        ...

    async def db_now(self) -> datetime:
        """The database's current time."""
        ...
