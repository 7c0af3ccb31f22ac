"""Test helpers: an in-memory :class:`RunStore` and a manual clock.

``MemoryStore`` reproduces the PostgreSQL store's semantics (eligibility, ordering, fencing,
events, idempotency) without a database, so plugin authors and workfleet's own unit tests can
drive the runtime fast and deterministically. The contract suite (``tests/contract``) runs the
same assertions against it and against PostgreSQL to keep the two honest.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from workfleet.models import (
    ClaimedRun,
    Completion,
    Enqueued,
    Event,
    EventType,
    HeartbeatResult,
    Lease,
    NewRun,
    RegistryEntry,
    RunRecord,
    RunStatus,
)
from workfleet.store import ClaimFilter, SweepResult


class ManualClock:
    """A clock that only moves when told to: ``advance(seconds)``."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def _real_now() -> datetime:
    return datetime.now(UTC)


@cache
def _like_regex(pattern: str) -> re.Pattern[str]:
    """SQL ``LIKE`` (backslash escapes, ``%`` and ``_`` wildcards) as a regular expression."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def like(value: str, pattern: str) -> bool:
    return _like_regex(pattern).fullmatch(value) is not None


@dataclass
class _Row:
    id: uuid.UUID
    type: str
    payload: Any
    status: RunStatus = RunStatus.PENDING
    priority: int = 100
    run_at: datetime = field(default_factory=_real_now)
    idempotency_key: str | None = None
    attempt: int = 0
    max_attempts: int = 3
    leased_by: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    result: Any = None
    created_at: datetime = field(default_factory=_real_now)
    updated_at: datetime = field(default_factory=_real_now)
    deleted_at: datetime | None = None
    seq: int = 0  # insertion order breaks created_at ties, as the physical order does in SQL

    def record(self) -> RunRecord:
        return RunRecord(
            self.id,
            self.type,
            copy.deepcopy(self.payload),
            self.status,
            self.priority,
            self.run_at,
            self.idempotency_key,
            self.attempt,
            self.max_attempts,
            self.leased_by,
            self.lease_until,
            self.last_error,
            copy.deepcopy(self.result),
            self.created_at,
            self.updated_at,
            self.deleted_at,
        )


class MemoryStore:
    """An in-memory :class:`workfleet.store.RunStore` with an injectable clock."""

    def __init__(self, clock: Callable[[], datetime] | ManualClock | None = None) -> None:
        if isinstance(clock, ManualClock):
            self._now: Callable[[], datetime] = clock.now
        else:
            self._now = clock or _real_now
        self.runs: dict[uuid.UUID, _Row] = {}
        self.event_log: list[Event] = []
        self.registry: dict[str, dict[str, Any]] = {}
        self._seq = 0

    # --- helpers ---------------------------------------------------------------------------

    def _event(self, run_id: uuid.UUID, kind: EventType | str, data: Any = None) -> None:
        self.event_log.append(
            Event(len(self.event_log) + 1, run_id, EventType(kind), data, self._now())
        )

    def _held(self, row: _Row | None, worker_id: str, attempt: int) -> bool:
        return (
            row is not None
            and row.status is RunStatus.LEASED
            and row.leased_by == worker_id
            and row.attempt == attempt
        )

    def _matches(self, run_type: str, filt: ClaimFilter) -> bool:
        return run_type in filt.exact or any(like(run_type, p) for p in filt.likes)

    def _enabled(self, run_type: str) -> bool:
        entry = self.registry.get(run_type)
        return entry is None or bool(entry["is_enabled"])

    def set_enabled(self, run_type: str, enabled: bool) -> None:
        """Test helper: the operator's ``is_enabled`` switch in ``workflow_registry``."""
        entry = self.registry.setdefault(
            run_type, {"runtime": "python", "description": None, "is_enabled": True}
        )
        entry["is_enabled"] = enabled

    # --- lease loop ------------------------------------------------------------------------

    async def claim(
        self, worker_id: str, filt: ClaimFilter, limit: int, lease_seconds: float
    ) -> list[ClaimedRun]:
        if limit <= 0 or filt.empty:
            return []
        now = self._now()
        eligible = sorted(
            (
                r
                for r in self.runs.values()
                if r.status is RunStatus.PENDING
                and r.deleted_at is None
                and r.run_at <= now
                and self._matches(r.type, filt)
                and self._enabled(r.type)
            ),
            key=lambda r: (r.priority, r.created_at, r.seq),
        )[:limit]
        claimed = []
        for r in eligible:
            r.status, r.leased_by = RunStatus.LEASED, worker_id
            r.lease_until = now + timedelta(seconds=lease_seconds)
            r.updated_at = now
            data = {"worker_id": worker_id, "attempt": r.attempt + 1}
            self._event(r.id, EventType.LEASED, dict(data))
            self._event(r.id, EventType.STARTED, dict(data))
            claimed.append(
                ClaimedRun(
                    r.id,
                    r.type,
                    copy.deepcopy(r.payload),
                    r.attempt,
                    r.max_attempts,
                    r.priority,
                    r.run_at,
                    r.created_at,
                    now,
                )
            )
        return claimed

    async def next_due(self, filt: ClaimFilter) -> float | None:
        if filt.empty:
            return None
        now = self._now()
        future = [
            r.run_at
            for r in self.runs.values()
            if r.status is RunStatus.PENDING
            and r.deleted_at is None
            and r.run_at > now
            and self._matches(r.type, filt)
            and self._enabled(r.type)
        ]
        return (min(future) - now).total_seconds() if future else None

    async def complete_many(
        self, worker_id: str, completions: Sequence[Completion]
    ) -> set[uuid.UUID]:
        now = self._now()
        applied: set[uuid.UUID] = set()
        for c in completions:
            r = self.runs.get(c.lease.run_id)
            if r is None or not self._held(r, worker_id, c.lease.attempt):
                continue
            r.status = c.status
            r.attempt += 1 if c.consume_attempt else 0
            if c.delay is not None:
                r.run_at = now + timedelta(seconds=c.delay)
            if c.status is RunStatus.SUCCEEDED:
                r.result = None if c.result_json is None else json.loads(c.result_json)
            if c.error is not None:
                r.last_error = c.error
            r.leased_by = r.lease_until = None
            r.updated_at = now
            self._event(r.id, c.event, json.loads(json.dumps(c.event_data, default=str)))
            applied.add(r.id)
        return applied

    async def heartbeat_many(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[HeartbeatResult]:
        now = self._now()
        results = []
        for lease in leases:
            r = self.runs.get(lease.run_id)
            held = self._held(r, worker_id, lease.attempt)
            if r is not None and held:
                until = now + timedelta(seconds=lease_seconds)
                r.lease_until = max(r.lease_until or until, until)
                r.updated_at = now
            results.append(HeartbeatResult(lease.run_id, held, r.status if r else None))
        return results

    async def extend_lease(self, worker_id: str, lease: Lease, seconds: float) -> HeartbeatResult:
        [result] = await self.heartbeat_many(worker_id, [lease], seconds)
        if result.held:
            self._event(
                lease.run_id,
                EventType.HEARTBEAT,
                {"extended_by_seconds": float(seconds), "worker_id": worker_id},
            )
        return result

    async def release_many(self, worker_id: str, leases: Sequence[Lease]) -> set[uuid.UUID]:
        now = self._now()
        released = set()
        for lease in leases:
            r = self.runs.get(lease.run_id)
            if r is None or not self._held(r, worker_id, lease.attempt):
                continue
            r.status, r.leased_by, r.lease_until = RunStatus.PENDING, None, None
            r.run_at = r.updated_at = now
            self._event(r.id, EventType.RETRIED, {"reason": "released", "worker_id": worker_id})
            released.add(r.id)
        return released

    async def reclaim_expired(self, limit: int = 1000) -> SweepResult:
        now = self._now()
        expired = sorted(
            (
                r
                for r in self.runs.values()
                if r.status is RunStatus.LEASED
                and r.lease_until is not None
                and r.lease_until < now
            ),
            key=lambda r: r.lease_until or now,
        )[:limit]
        failed = 0
        for r in expired:
            r.attempt += 1
            r.last_error = (
                f"lease expired: worker {r.leased_by or '?'} stopped heartbeating "
                f"(attempt {r.attempt} of {r.max_attempts})"
            )
            r.status = RunStatus.FAILED if r.attempt >= r.max_attempts else RunStatus.PENDING
            failed += r.status is RunStatus.FAILED
            r.run_at = r.updated_at = now
            r.leased_by = r.lease_until = None
            kind = EventType.FAILED if r.status is RunStatus.FAILED else EventType.RETRIED
            self._event(
                r.id, kind, {"reason": "lease_expired", "attempt": r.attempt, "error": r.last_error}
            )
        return SweepResult(requeued=len(expired) - failed, failed=failed)

    # --- producers and operators ---------------------------------------------------------

    async def enqueue_many(self, runs: Sequence[NewRun]) -> list[Enqueued]:
        now = self._now()
        by_key = {r.idempotency_key: r.id for r in self.runs.values() if r.idempotency_key}
        prepared = [json.loads(json.dumps(n.payload, allow_nan=False)) for n in runs]
        out = []
        for new, payload in zip(runs, prepared, strict=True):
            if new.idempotency_key is not None and new.idempotency_key in by_key:
                out.append(Enqueued(by_key[new.idempotency_key], False))
                continue
            self._seq += 1
            row = _Row(
                id=uuid.uuid4(),
                type=new.type,
                payload={} if payload is None else payload,
                priority=100 if new.priority is None else new.priority,
                run_at=new.run_at or now + timedelta(seconds=new.delay or 0.0),
                idempotency_key=new.idempotency_key,
                max_attempts=3 if new.max_attempts is None else new.max_attempts,
                created_at=now,
                updated_at=now,
                seq=self._seq,
            )
            self.runs[row.id] = row
            if row.idempotency_key is not None:
                by_key[row.idempotency_key] = row.id
            self._event(row.id, EventType.CREATED)
            out.append(Enqueued(row.id, True))
        return out

    async def get(self, run_id: uuid.UUID) -> RunRecord | None:
        row = self.runs.get(run_id)
        return None if row is None else row.record()

    async def list_runs(
        self, *, status: RunStatus | None = None, type_like: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        rows = [
            r
            for r in self.runs.values()
            if r.deleted_at is None
            and (status is None or r.status is status)
            and (type_like is None or like(r.type, type_like))
        ]
        rows.sort(key=lambda r: (r.created_at, r.seq), reverse=True)
        return [r.record() for r in rows[:limit]]

    async def events(self, run_id: uuid.UUID) -> list[Event]:
        return [e for e in self.event_log if e.run_id == run_id]

    async def cancel(self, run_id: uuid.UUID) -> bool:
        r = self.runs.get(run_id)
        if r is None or r.status not in (RunStatus.PENDING, RunStatus.LEASED):
            return False
        previous = r.status
        r.status, r.updated_at = RunStatus.CANCELLED, self._now()
        self._event(
            r.id,
            EventType.CANCELLED,
            {"previous_status": str(previous), "leased_by": r.leased_by, "attempt": r.attempt},
        )
        return True

    async def redrive(
        self, run_id: uuid.UUID, from_statuses: Sequence[RunStatus] = (RunStatus.FAILED,)
    ) -> bool:
        r = self.runs.get(run_id)
        if r is None or r.deleted_at is not None or r.status not in from_statuses:
            return False
        r.status, r.attempt, r.leased_by, r.lease_until = RunStatus.PENDING, 0, None, None
        r.run_at = r.updated_at = self._now()
        self._event(r.id, EventType.RETRIED, {"reason": "redrive", "previous_error": r.last_error})
        return True

    async def upsert_registry(self, entries: Sequence[RegistryEntry]) -> None:
        for e in entries:
            entry = self.registry.setdefault(
                e.workflow_name, {"runtime": e.runtime, "description": None, "is_enabled": True}
            )
            entry["runtime"] = e.runtime
            if e.description is not None:
                entry["description"] = e.description

    async def db_now(self) -> datetime:
        return self._now()

    # --- test conveniences -------------------------------------------------------------------

    def soft_delete(self, run_id: uuid.UUID) -> None:
        self.runs[run_id].deleted_at = self._now()

    def snapshot(self, run_id: uuid.UUID) -> RunRecord:
        return replace(self.runs[run_id].record())
