"""What contract tests do *around* the store, per backend, plus shared builders.

Moving time, expiring leases, flipping the registry switch, soft-deleting and reading raw rows
differ between the fake (its :class:`ManualClock`, its test helpers) and PostgreSQL (plain SQL
in the test's schema, as an operator would write it); everything else goes through the store.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from workfleet.models import ClaimedRun, Completion, EventType, Lease, NewRun, RunRecord, RunStatus
from workfleet.patterns import TypePattern
from workfleet.store import ClaimFilter, RunQueue
from workfleet.testing import ManualClock, MemoryStore

SqlRunner = Callable[..., Awaitable[list[tuple[Any, ...]]]]
RUN_COLUMNS = tuple(f.name for f in dataclasses.fields(RunRecord))


class Harness(Protocol):
    async def shift(self, seconds: float) -> None:
        """Let ``seconds`` pass for every stored run_at and lease_until."""

    async def make_due(self, run_id: uuid.UUID) -> None:
        """Make a future run due now."""

    async def expire_leases(self) -> None:
        """Make every current lease expired."""

    async def set_enabled(self, run_type: str, enabled: bool) -> None:
        """The operator's registry switch."""

    async def soft_delete(self, run_id: uuid.UUID) -> None:
        """Set deleted_at."""

    async def raw(self, run_id: uuid.UUID) -> dict[str, Any] | None:
        """The row's columns (status as plain text), read past the store."""

    async def registry(self, name: str) -> dict[str, Any] | None:
        """runtime, is_enabled, description of a registry row."""

    async def soft_delete_registry(self, name: str) -> None:
        """Set a registry row's deleted_at."""

    async def registry_deleted(self, name: str) -> bool:
        """Whether the registry row is soft-deleted."""


@dataclasses.dataclass
class MemoryHarness:
    store: MemoryStore
    clock: ManualClock

    async def shift(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def make_due(self, run_id: uuid.UUID) -> None:
        record = await self.store.get(run_id)
        assert record is not None
        self.clock.advance_to(record.run_at)

    async def expire_leases(self) -> None:
        leased = await self.store.list_runs(status=RunStatus.LEASED, limit=1_000_000)
        ends = [r.lease_until for r in leased if r.lease_until is not None]
        if ends:
            self.clock.advance_to(max(ends) + timedelta(seconds=1))

    async def set_enabled(self, run_type: str, enabled: bool) -> None:
        self.store.set_enabled(run_type, enabled)

    async def soft_delete(self, run_id: uuid.UUID) -> None:
        self.store.soft_delete(run_id)

    async def raw(self, run_id: uuid.UUID) -> dict[str, Any] | None:
        record = await self.store.get(run_id)
        if record is None:
            return None
        return {**dataclasses.asdict(record), "status": str(record.status)}

    async def registry(self, name: str) -> dict[str, Any] | None:
        row = self.store.registry_entry(name)
        if row is None:
            return None
        return {
            "runtime": row.runtime,
            "is_enabled": row.is_enabled,
            "description": row.description,
        }

    async def soft_delete_registry(self, name: str) -> None:
        self.store.soft_delete_registry(name)

    async def registry_deleted(self, name: str) -> bool:
        row = self.store.registry_entry(name)
        assert row is not None
        return row.deleted_at is not None


@dataclasses.dataclass
class PgHarness:
    run_sql: SqlRunner

    async def shift(self, seconds: float) -> None:
        # moving every stored instant back is the same as moving the clock forward
        await self.run_sql(
            "UPDATE workflow_run SET run_at = run_at - make_interval(secs => %(s)s), "
            "lease_until = lease_until - make_interval(secs => %(s)s)",
            {"s": seconds},
        )

    async def make_due(self, run_id: uuid.UUID) -> None:
        await self.run_sql("UPDATE workflow_run SET run_at = now() WHERE id = %s", [run_id])

    async def expire_leases(self) -> None:
        await self.run_sql(
            "UPDATE workflow_run SET lease_until = now() - interval '1 second' "
            "WHERE status = 'leased'"
        )

    async def set_enabled(self, run_type: str, enabled: bool) -> None:
        await self.run_sql(
            "INSERT INTO workflow_registry (workflow_name, runtime, is_enabled) "
            "VALUES (%s, 'python', %s) ON CONFLICT (workflow_name) "
            "DO UPDATE SET is_enabled = EXCLUDED.is_enabled",
            [run_type, enabled],
        )

    async def soft_delete(self, run_id: uuid.UUID) -> None:
        await self.run_sql("UPDATE workflow_run SET deleted_at = now() WHERE id = %s", [run_id])

    async def raw(self, run_id: uuid.UUID) -> dict[str, Any] | None:
        rows = await self.run_sql(
            "SELECT id, type, payload, status, priority, run_at, idempotency_key, attempt, "
            "max_attempts, leased_by, lease_until, last_error, result, created_at, updated_at, "
            "deleted_at FROM workflow_run WHERE id = %s",
            [run_id],
        )
        return dict(zip(RUN_COLUMNS, rows[0], strict=True)) if rows else None

    async def registry(self, name: str) -> dict[str, Any] | None:
        rows = await self.run_sql(
            "SELECT runtime, is_enabled, description FROM workflow_registry "
            "WHERE workflow_name = %s",
            [name],
        )
        if not rows:
            return None
        runtime, is_enabled, description = rows[0]
        return {"runtime": runtime, "is_enabled": is_enabled, "description": description}

    async def soft_delete_registry(self, name: str) -> None:
        await self.run_sql(
            "UPDATE workflow_registry SET deleted_at = now() WHERE workflow_name = %s", [name]
        )

    async def registry_deleted(self, name: str) -> bool:
        [(deleted,)] = await self.run_sql(
            "SELECT deleted_at IS NOT NULL FROM workflow_registry WHERE workflow_name = %s",
            [name],
        )
        return bool(deleted)


# --- builders shared by the contract tests -----------------------------------------------------

W = "worker-a"
ALL = ClaimFilter((), ("%",))


def only(*patterns: str) -> ClaimFilter:
    """The filter a lease loop builds from executor patterns."""
    parsed = [TypePattern.parse(p) for p in patterns]
    return ClaimFilter(
        tuple(p.prefix for p in parsed if not p.wildcard),
        tuple(p.like() for p in parsed if p.wildcard),
    )


async def enqueue(
    store: RunQueue, run_type: str = "t.a.v1", payload: Any = None, **fields: Any
) -> uuid.UUID:
    [result] = await store.enqueue_many(
        [NewRun(run_type, {"k": 1} if payload is None else payload, **fields)]
    )
    assert result.created
    return result.id


async def claim_one(store: RunQueue, worker: str = W, lease: float = 30) -> ClaimedRun:
    [claimed] = await store.claim(worker, ALL, 1, lease)
    return claimed


async def record(store: RunQueue, run_id: uuid.UUID) -> RunRecord:
    found = await store.get(run_id)
    assert found is not None, f"run {run_id} is missing"
    return found


async def kinds(store: RunQueue, run_id: uuid.UUID) -> list[str]:
    return [str(e.event_type) for e in await store.events(run_id)]


def succeed(run_id: uuid.UUID, attempt: int = 0, result: Any = "ok") -> Completion:
    return Completion(
        Lease(run_id, attempt),
        RunStatus.SUCCEEDED,
        EventType.SUCCEEDED,
        consume_attempt=False,
        result_json=json.dumps(result),
        event_data={"attempt": attempt + 1, "duration_s": 0.25},
    )


def retry(
    run_id: uuid.UUID, attempt: int = 0, delay: float = 30.0, error: str = "RuntimeError: boom"
) -> Completion:
    return Completion(
        Lease(run_id, attempt),
        RunStatus.PENDING,
        EventType.RETRIED,
        consume_attempt=True,
        delay=delay,
        error=error,
        event_data={"attempt": attempt + 1, "error": error},
    )


def fail(run_id: uuid.UUID, attempt: int = 0, error: str = "Fail: no") -> Completion:
    return Completion(
        Lease(run_id, attempt),
        RunStatus.FAILED,
        EventType.FAILED,
        consume_attempt=True,
        error=error,
        event_data={"attempt": attempt + 1, "error": error},
    )


def snooze(run_id: uuid.UUID, attempt: int = 0, delay: float = 60.0) -> Completion:
    return Completion(
        Lease(run_id, attempt),
        RunStatus.PENDING,
        EventType.RETRIED,
        consume_attempt=False,
        delay=delay,
        event_data={"reason": "snoozed"},
    )


def release(run_id: uuid.UUID, token: int = 0) -> Completion:
    """The shutdown release of the worker ``W``'s lease."""
    return Completion.released(Lease(run_id, token), W)
