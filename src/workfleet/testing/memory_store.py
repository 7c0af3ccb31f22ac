"""An in-memory :class:`~workfleet.store.RunQueue` with PostgreSQL's semantics.

Every method reproduces the statement of the same name in ``db/sql/runs.sql`` and the triggers
of the migrations: the same eligibility, order, fencing (lease tokens), column writes and audit
events, and :class:`~workfleet.errors.StoreError` where PostgreSQL would reject the input. The
contract suite (``tests/contract``) runs one set of assertions against this class and
PostgreSQL.

It implements the hot path (``RunQueue``). Beside it, a few plain inspection and operator
helpers that tests need to look at and steer runs (``get``, ``events``, ``list_runs``,
``cancel``, ``redrive``, ``db_now``, ``set_enabled``, ``soft_delete``) behave as their
PostgreSQL counterparts; the rest of the read and operations ports (keyset pages, counts,
status, schedules) exist on PostgreSQL only and are tested there.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from workfleet.errors import RunNotFoundError, StoreDataError, StoreError
from workfleet.models import (
    MAX_TYPE_BYTES,
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
from workfleet.store import ClaimFilter, SentClaim, SweepResult
from workfleet.testing.clock import Clock, SystemClock
from workfleet.testing.pgvalues import (
    as_timestamptz,
    check_int4,
    check_text,
    event_data_to_jsonb,
    float8_in_jsonb,
    like_or_store_error,
    parse_jsonb,
    plus_seconds,
    to_jsonb,
)
from workfleet.testing.rows import RegistryRow, StoredRun, registered

INT4_MAX = 2**31 - 1


class _Sent:
    """A claim made by :meth:`MemoryStore.claim_now`: its runs, or the error to raise."""

    __slots__ = ("_error", "_runs")

    def __init__(self, runs: list[ClaimedRun], error: StoreError | None) -> None:
        self._runs = runs
        self._error = error

    def __await__(self) -> Generator[Any, None, list[ClaimedRun]]:
        return self._result().__await__()

    async def _result(self) -> list[ClaimedRun]:
        await asyncio.sleep(0)  # as a claim on the wire answers later
        if self._error is not None:
            raise self._error
        return self._runs

    def abandon(self) -> None:
        pass  # its runs stay leased until their leases expire, as in PostgreSQL


class MemoryStore:
    """A :class:`~workfleet.store.RunQueue` in memory, for fast deterministic tests.

    Meant for workfleet's unit tests and for plugin authors' own: drive the runtime (or call the
    methods directly) without a database. Time comes from ``clock`` (default: the real UTC time;
    pass a :class:`~workfleet.testing.ManualClock` to move it by hand). Use it from one asyncio
    event loop: each method yields once, as a database round trip would, then runs to the end
    without awaiting, so every call is atomic like the single SQL statement it stands for.
    """

    def __init__(self, clock: Clock | None = None, *, lifecycle_events: bool = True) -> None:
        self.clock: Clock = clock or SystemClock()
        self.lifecycle_events = lifecycle_events
        self._runs: dict[uuid.UUID, StoredRun] = {}
        self._events: list[Event] = []
        self._registry: dict[str, RegistryRow] = {}
        self._seq = 0
        # called with every run whose status changed, as the migrations' row triggers are
        # (MemoryWorkflowStore wakes parents and cascades cancellations through it)
        self.status_listeners: list[Callable[[StoredRun], None]] = []

    def _status_changed(self, row: StoredRun) -> None:
        for listener in self.status_listeners:
            listener(row)

    # --- test helpers (not part of RunQueue) ---------------------------------------------------

    def set_enabled(self, run_type: str, enabled: bool) -> None:
        """The operator's ``workflow_registry.is_enabled`` switch (creates the row if absent)."""
        now = self.clock.now()
        row = self._registry.get(run_type)
        if row is None:
            row = RegistryRow(run_type, "python", enabled, None, now, now)
        self._registry[run_type] = replace(row, is_enabled=enabled, updated_at=now)

    def soft_delete_registry(self, run_type: str) -> None:
        """Set the registry row's ``deleted_at``, as an operator would; it then disables nothing."""
        row = self._registry.get(run_type)
        if row is None:
            raise KeyError(f"no registry row {run_type!r}")
        now = self.clock.now()
        self._registry[run_type] = replace(row, deleted_at=now, updated_at=now)

    def registry_entry(self, run_type: str) -> RegistryRow | None:
        """The registry row of ``run_type``, or None."""
        return self._registry.get(run_type)

    def soft_delete(self, run_id: uuid.UUID) -> None:
        """Set ``deleted_at`` as an operator would; deleted runs never run again."""
        row = self._runs.get(run_id)
        if row is None:
            raise RunNotFoundError(f"no run {run_id}")
        row.deleted_at = row.updated_at = self.clock.now()

    # --- shared pieces of the statements ----------------------------------------------------

    def _event(self, run_id: uuid.UUID, kind: EventType, data: Any, now: datetime) -> None:
        self._events.append(Event(len(self._events) + 1, run_id, kind, data, now))

    @staticmethod
    def _held(row: StoredRun | None, worker_id: str, token: int) -> bool:
        return (
            row is not None
            and row.status is RunStatus.LEASED
            and row.leased_by == worker_id
            and row.lease_token == token
        )

    def _claimable_type(self, run_type: str, filt: ClaimFilter) -> bool:
        if run_type not in filt.exact and not any(
            like_or_store_error(run_type, p) for p in filt.likes
        ):
            return False
        entry = self._registry.get(run_type)
        # a soft-deleted row disables nothing
        return entry is None or entry.is_enabled or entry.deleted_at is not None

    def _pending(self, filt: ClaimFilter) -> list[StoredRun]:
        return [
            r
            for r in self._runs.values()
            if r.status is RunStatus.PENDING
            and r.deleted_at is None
            and self._claimable_type(r.type, filt)
        ]

    # --- lease loop --------------------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        filt: ClaimFilter,
        limit: int,
        lease_seconds: float,
        *,
        waits: bool = True,
    ) -> list[ClaimedRun]:
        await asyncio.sleep(0)
        return self._claim(worker_id, filt, limit, lease_seconds, waits)

    def claim_now(
        self,
        worker_id: str,
        filt: ClaimFilter,
        limit: int,
        lease_seconds: float,
        *,
        waits: bool = True,
    ) -> SentClaim | None:
        # always sent: the claim is made here and now, its answer (or error) given on await
        try:
            return _Sent(self._claim(worker_id, filt, limit, lease_seconds, waits), None)
        except StoreError as exc:
            return _Sent([], exc)

    def _claim(
        self, worker_id: str, filt: ClaimFilter, limit: int, lease_seconds: float, waits: bool
    ) -> list[ClaimedRun]:
        if limit <= 0 or filt.empty:
            return []
        check_text("claim", worker_id, *filt.exact, *filt.likes)
        now = self.clock.now()
        # equal (priority, created_at) have no defined order in SQL; insertion order here
        due = sorted(
            (r for r in self._pending(filt) if r.run_at <= now and (waits or r.wait_kind is None)),
            key=lambda r: (r.priority, r.created_at, r.seq),
        )[:limit]
        claimed: list[ClaimedRun] = []
        lease_until = plus_seconds(now, lease_seconds) if due else now
        lifecycle = (EventType.LEASED, EventType.STARTED) if self.lifecycle_events else ()
        for r in due:
            r.status, r.leased_by = RunStatus.LEASED, worker_id
            r.lease_until, r.updated_at = lease_until, now
            r.lease_token = 0 if r.lease_token is None else r.lease_token + 1
            r.wait_kind = None
            for kind in lifecycle:
                self._event(r.id, kind, {"worker_id": worker_id, "attempt": r.attempt + 1}, now)
            claimed.append(
                ClaimedRun(
                    id=r.id,
                    type=r.type,
                    payload=copy.deepcopy(r.payload),
                    attempt=r.attempt,
                    max_attempts=r.max_attempts,
                    priority=r.priority,
                    run_at=r.run_at,
                    created_at=r.created_at,
                    claimed_at=now,
                    token=r.lease_token,
                )
            )
        return claimed

    async def next_due(self, filt: ClaimFilter) -> float | None:
        await asyncio.sleep(0)
        if filt.empty:
            return None
        check_text("next_due", *filt.exact, *filt.likes)
        now = self.clock.now()
        future = [r.run_at for r in self._pending(filt) if r.run_at > now]
        return (min(future) - now).total_seconds() if future else None

    async def complete_many(
        self, worker_id: str, completions: Sequence[Completion]
    ) -> set[uuid.UUID]:
        await asyncio.sleep(0)
        if not completions:
            return set()
        check_text("complete_many", worker_id, *(c.error for c in completions))
        now = self.clock.now()
        # the whole batch is parsed before anything changes: one bad row fails the statement
        parsed = [
            (
                c,
                None if c.result_json is None else parse_jsonb(c.result_json, "result"),
                event_data_to_jsonb(c.event_data),
            )
            for c in completions
        ]
        # UPDATE ... FROM input: fencing is judged on the rows as they were before the
        # statement, and a run listed twice is updated once (by a row that passes the fence)
        chosen: dict[uuid.UUID, tuple[Completion, Any, Any]] = {}
        for item in parsed:
            lease = item[0].lease
            row = self._runs.get(lease.run_id)
            if lease.run_id not in chosen and self._held(row, worker_id, lease.token):
                chosen[lease.run_id] = item
        run_ats = {
            run_id: plus_seconds(now, c.delay)
            for run_id, (c, _, _) in chosen.items()
            if c.delay is not None
        }
        for run_id, (c, result, _) in chosen.items():
            r = self._runs[run_id]
            r.status = c.status
            r.attempt += 1 if c.consume_attempt and r.attempt < INT4_MAX else 0
            r.run_at = run_ats.get(run_id, r.run_at)
            r.result = result if c.status is RunStatus.SUCCEEDED else r.result
            r.last_error = r.last_error if c.error is None else c.error
            r.leased_by = r.lease_until = None
            r.updated_at = now
        for run_id in chosen:
            self._status_changed(self._runs[run_id])
        # events: input JOIN updated on the run and its lease, so only the applied row has one
        for c, _, event_data in parsed:
            quiet = not self.lifecycle_events and c.event is EventType.SUCCEEDED
            if c.lease.run_id in chosen and chosen[c.lease.run_id][0] is c and not quiet:
                self._event(c.lease.run_id, c.event, event_data, now)
        return set(chosen)

    async def heartbeat_many(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[HeartbeatResult]:
        await asyncio.sleep(0)
        if not leases:
            return []
        # input order; PostgreSQL promises no order, so callers key the results by run id
        return self._extend(worker_id, leases, lease_seconds)

    def _extend(
        self, worker_id: str, leases: Sequence[Lease], seconds: float
    ) -> list[HeartbeatResult]:
        check_text("heartbeat", worker_id)
        now = self.clock.now()
        found = [(lease, self._runs.get(lease.run_id)) for lease in leases]
        held_leases = {
            (lease.run_id, lease.token)
            for lease, r in found
            if r is not None and self._held(r, worker_id, lease.token)
        }
        held = [
            r for lease, r in found if r is not None and (lease.run_id, lease.token) in held_leases
        ]
        until = plus_seconds(now, seconds) if held else now  # may raise before any change
        for r in held:
            # GREATEST ignores NULL: a heartbeat never shortens a lease
            r.lease_until = until if r.lease_until is None else max(r.lease_until, until)
            r.updated_at = now
        # held is joined back by run id and lease token, as the SQL does
        return [
            HeartbeatResult(
                lease.run_id,
                (lease.run_id, lease.token) in held_leases,
                r.status if r else None,
            )
            for lease, r in found
        ]

    async def extend_lease(self, worker_id: str, lease: Lease, seconds: float) -> HeartbeatResult:
        await asyncio.sleep(0)
        [result] = self._extend(worker_id, [lease], seconds)
        if result.held:
            data = {"extended_by_seconds": float8_in_jsonb(seconds), "worker_id": worker_id}
            self._event(lease.run_id, EventType.HEARTBEAT, data, self.clock.now())
        return result

    async def reclaim_expired(self, limit: int = 1000) -> SweepResult:
        await asyncio.sleep(0)
        if limit < 0:
            raise StoreError("reclaim_expired failed: LIMIT must not be negative")
        now = self.clock.now()
        expired = sorted(
            (
                r
                for r in self._runs.values()
                if r.status is RunStatus.LEASED
                # a leased row without a lease (edited by hand) is as expired as can be
                and (r.lease_until is None or r.lease_until < now)
            ),
            key=lambda r: (r.lease_until is not None, r.lease_until or now, r.seq),
        )[:limit]
        failed = 0
        for r in expired:
            tried = r.attempt + 1  # computed wide in SQL: a hand-written int4 max cannot overflow
            r.attempt = min(tried, INT4_MAX)
            r.last_error = (
                f"lease expired: worker {r.leased_by or '?'} stopped heartbeating "
                f"(attempt {tried} of {r.max_attempts})"
            )
            r.status = RunStatus.FAILED if tried >= r.max_attempts else RunStatus.PENDING
            r.run_at = r.updated_at = now
            r.leased_by = r.lease_until = None
            kind = EventType.FAILED if r.status is RunStatus.FAILED else EventType.RETRIED
            failed += kind is EventType.FAILED
            data = {"reason": "lease_expired", "attempt": r.attempt, "error": r.last_error}
            self._event(r.id, kind, data, now)
            self._status_changed(r)
        return SweepResult(requeued=len(expired) - failed, failed=failed)

    # --- producers and operators -----------------------------------------------------------

    async def enqueue_many(self, runs: Sequence[NewRun]) -> list[Enqueued]:
        await asyncio.sleep(0)
        if not runs:
            return []
        now = self.clock.now()
        prepared = []
        for new in runs:  # validate the whole batch first: one bad row inserts nothing
            check_text("enqueue", new.type, new.idempotency_key)
            if len(new.type.encode("utf-8", "surrogatepass")) > MAX_TYPE_BYTES:
                # the INSERT trigger's check (migration 0005)
                raise StoreDataError(
                    "enqueue failed: workflow_run.type is limited to 255 bytes (UTF-8)"
                )
            check_int4("enqueue", new.priority, new.max_attempts)
            payload = to_jsonb({} if new.payload is None else new.payload, "payload")
            if new.run_at is not None:
                run_at = as_timestamptz(new.run_at)
            else:
                run_at = plus_seconds(now, 0.0 if new.delay is None else new.delay)
            prepared.append((new, payload, run_at))
        by_key = {
            r.idempotency_key: r.id for r in self._runs.values() if r.idempotency_key is not None
        }
        out: list[Enqueued] = []
        inserted: list[uuid.UUID] = []
        for new, payload, run_at in prepared:
            key = new.idempotency_key
            if key is not None and key in by_key:
                out.append(Enqueued(by_key[key], False))
                continue
            self._seq += 1
            row = StoredRun(
                id=uuid.uuid4(),
                type=new.type,
                payload=payload,
                status=RunStatus.PENDING,
                priority=100 if new.priority is None else new.priority,
                run_at=run_at,
                idempotency_key=key,
                attempt=0,
                max_attempts=3 if new.max_attempts is None else new.max_attempts,
                created_at=now,
                updated_at=now,
                seq=self._seq,
            )
            self._runs[row.id] = row
            if key is not None:
                by_key[key] = row.id
            inserted.append(row.id)
            out.append(Enqueued(row.id, True))
        # the statement-level insert trigger: one 'created' event per row, after the insert
        for run_id in inserted:
            self._event(run_id, EventType.CREATED, None, now)
        return out

    async def get(self, run_id: uuid.UUID) -> RunRecord | None:
        await asyncio.sleep(0)
        row = self._runs.get(run_id)
        return None if row is None else row.record()

    async def list_runs(
        self, *, status: RunStatus | None = None, type_like: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        await asyncio.sleep(0)
        if limit < 0:
            raise StoreError("list_runs failed: LIMIT must not be negative")
        check_text("list_runs", type_like)
        rows = [
            r
            for r in self._runs.values()
            if r.deleted_at is None
            and (status is None or r.status == status)
            and (type_like is None or like_or_store_error(r.type, type_like))
        ]
        # ORDER BY created_at DESC, id: uuid order is the order of its 128-bit integer
        rows.sort(key=lambda r: r.id.int)
        rows.sort(key=lambda r: r.created_at, reverse=True)
        return [r.record() for r in rows[:limit]]

    async def events(self, run_id: uuid.UUID) -> list[Event]:
        await asyncio.sleep(0)
        return [replace(e, data=copy.deepcopy(e.data)) for e in self._events if e.run_id == run_id]

    async def cancel(self, run_id: uuid.UUID) -> bool:
        await asyncio.sleep(0)
        r = self._runs.get(run_id)
        if r is None or r.status not in (RunStatus.PENDING, RunStatus.LEASED):
            return False
        self.cancel_row(r)
        return True

    def cancel_row(self, r: StoredRun) -> None:
        """``UPDATE ... SET status = 'cancelled'`` of one row, with its trigger's work."""
        now = self.clock.now()
        # the cancellation trigger's audit row; the lease columns are left as they were
        data = {"previous_status": str(r.status), "leased_by": r.leased_by, "attempt": r.attempt}
        r.status, r.updated_at = RunStatus.CANCELLED, now
        self._event(r.id, EventType.CANCELLED, data, now)
        self._status_changed(r)

    async def redrive(
        self, run_id: uuid.UUID, from_statuses: Sequence[RunStatus] = (RunStatus.FAILED,)
    ) -> bool:
        await asyncio.sleep(0)
        r = self._runs.get(run_id)
        allowed = {str(s) for s in from_statuses}
        if r is None or r.deleted_at is not None or str(r.status) not in allowed:
            return False
        now = self.clock.now()
        r.status, r.attempt, r.leased_by, r.lease_until = RunStatus.PENDING, 0, None, None
        r.run_at = r.updated_at = now
        r.wait_kind = None
        data = {"reason": "redrive", "previous_error": r.last_error}
        self._event(r.id, EventType.RETRIED, data, now)
        return True

    async def upsert_registry(self, entries: Sequence[RegistryEntry]) -> None:
        await asyncio.sleep(0)
        if not entries:
            return
        names = [e.workflow_name for e in entries]
        for e in entries:
            check_text("upsert_registry", e.workflow_name, e.runtime, e.description)
        if len(set(names)) != len(names):
            raise StoreError(
                "upsert_registry failed: ON CONFLICT DO UPDATE command cannot affect row a "
                "second time (a type is listed twice)"
            )
        now = self.clock.now()
        for e in entries:
            name = e.workflow_name
            self._registry[name] = registered(self._registry.get(name), e, now)

    async def db_now(self) -> datetime:
        await asyncio.sleep(0)
        return self.clock.now()
