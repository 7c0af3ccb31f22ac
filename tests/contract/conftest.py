"""The contract harness: one ``store`` fixture, parametrised over the fake and PostgreSQL.

Each backend also gets a ``Harness`` for the few things a test must do *around* the store that
differ by backend: moving time (the fake's clock; PostgreSQL rows shifted into the past),
expiring leases, flipping the registry switch, soft-deleting a run.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from workfleet.db.store import PgStore
from workfleet.store import RunStore
from workfleet.testing import ManualClock, MemoryStore

SqlRunner = Callable[..., Awaitable[list[tuple[Any, ...]]]]


class Harness:
    async def advance(self, seconds: float) -> None:
        raise NotImplementedError

    async def expire_leases(self) -> None:
        raise NotImplementedError

    async def set_enabled(self, run_type: str, enabled: bool) -> None:
        raise NotImplementedError

    async def soft_delete(self, run_id: uuid.UUID) -> None:
        raise NotImplementedError


@dataclass
class MemoryHarness(Harness):
    store: MemoryStore
    clock: ManualClock

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def expire_leases(self) -> None:
        for row in self.store.runs.values():
            if row.lease_until is not None:
                row.lease_until = self.clock.now() - timedelta(seconds=1)

    async def set_enabled(self, run_type: str, enabled: bool) -> None:
        self.store.set_enabled(run_type, enabled)

    async def soft_delete(self, run_id: uuid.UUID) -> None:
        self.store.soft_delete(run_id)


@dataclass
class PgHarness(Harness):
    run_sql: SqlRunner

    async def advance(self, seconds: float) -> None:
        # moving every timestamp back is moving the clock forward
        await self.run_sql(
            "UPDATE workflow_run SET run_at = run_at - make_interval(secs => %s), "
            "lease_until = lease_until - make_interval(secs => %s)",
            [seconds, seconds],
        )

    async def expire_leases(self) -> None:
        await self.run_sql(
            "UPDATE workflow_run SET lease_until = now() - interval '1 second' "
            "WHERE lease_until IS NOT NULL"
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


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[RunStore, Harness]:
    if request.param == "memory":
        clock = ManualClock()
        store = MemoryStore(clock)
        return store, MemoryHarness(store, clock)
    pg_store: PgStore = request.getfixturevalue("pg_store")
    return pg_store, PgHarness(request.getfixturevalue("run_sql"))


@pytest.fixture
def store(backend: tuple[RunStore, Harness]) -> RunStore:
    return backend[0]


@pytest.fixture
def harness(backend: tuple[RunStore, Harness]) -> Harness:
    return backend[1]
