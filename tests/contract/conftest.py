"""The contract fixtures: ``store`` and its ``harness``, parametrised over the fake and PostgreSQL.

Every test in this directory runs twice, once per backend, with the same assertions (DESIGN §3).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.harness import Harness, MemoryHarness, PgHarness
from workfleet.store import RunQueue
from workfleet.testing import ManualClock, MemoryStore


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[RunQueue, Harness]:
    if request.param == "memory":
        clock = ManualClock()
        memory = MemoryStore(clock)
        return memory, MemoryHarness(memory, clock)
    pg_store: Any = request.getfixturevalue("pg_store")
    return pg_store, PgHarness(request.getfixturevalue("run_sql"))


@pytest.fixture
def store(backend: tuple[RunQueue, Harness]) -> RunQueue:
    return backend[0]


@pytest.fixture
def harness(backend: tuple[RunQueue, Harness]) -> Harness:
    return backend[1]
