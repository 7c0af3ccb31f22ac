"""What only the fake has: its clocks, its test helpers, and its promises to plugin authors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from workfleet.errors import RunNotFoundError
from workfleet.models import NewRun, RegistryEntry
from workfleet.store import ClaimFilter, RunQueue
from workfleet.testing import Clock, ManualClock, MemoryStore, SystemClock, like

ALL = ClaimFilter((), ("%",))


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock()
    start = clock.now()
    assert start == datetime(2030, 1, 1, tzinfo=UTC)
    assert clock.advance(1.5) == start + timedelta(seconds=1.5)
    assert clock.advance(timedelta(minutes=1)) == start + timedelta(seconds=61.5)
    assert clock.advance_to(start) == start + timedelta(seconds=61.5), "the past is a no-op"
    assert clock.advance_to(start + timedelta(hours=1)) == start + timedelta(hours=1)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_clocks_are_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2030, 1, 1))  # naive on purpose
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock().advance_to(datetime(2031, 1, 1))
    assert SystemClock().now().tzinfo is not None
    assert isinstance(ManualClock(), Clock) and isinstance(SystemClock(), Clock)


async def test_default_clock_is_the_real_utc_time() -> None:
    store = MemoryStore()
    before = datetime.now(UTC)
    now = await store.db_now()
    assert before <= now <= datetime.now(UTC)


def test_memory_store_is_a_run_store() -> None:
    assert isinstance(MemoryStore(ManualClock()), RunQueue)


async def test_time_comes_from_the_injected_clock() -> None:
    clock = ManualClock()
    store = MemoryStore(clock=clock)
    [result] = await store.enqueue_many([NewRun("t.a.v1", delay=10)])
    assert await store.next_due(ALL) == 10
    clock.advance(10)
    [claimed] = await store.claim("w", ALL, 1, 30)
    assert (claimed.id, claimed.claimed_at) == (result.id, clock.now())


async def test_returned_values_are_copies() -> None:
    store = MemoryStore(ManualClock())
    payload = {"items": [1]}
    [result] = await store.enqueue_many([NewRun("t.a.v1", payload)])
    payload["items"].append(2)
    record = await store.get(result.id)
    assert record is not None and record.payload == {"items": [1]}
    record.payload["items"].append(3)
    [claimed] = await store.claim("w", ALL, 1, 30)
    assert claimed.payload == {"items": [1]}


async def test_naive_run_at_is_read_as_utc() -> None:
    store = MemoryStore(ManualClock())
    naive = datetime(2030, 1, 2)  # what a careless producer passes
    [result] = await store.enqueue_many([NewRun("t.a.v1", run_at=naive)])
    record = await store.get(result.id)
    assert record is not None and record.run_at == naive.replace(tzinfo=UTC)


async def test_set_enabled_creates_and_flips_the_registry_row() -> None:
    store = MemoryStore(ManualClock())
    assert store.registry_entry("t.a.v1") is None
    store.set_enabled("t.a.v1", False)
    entry = store.registry_entry("t.a.v1")
    assert entry is not None and (entry.runtime, entry.is_enabled) == ("python", False)
    await store.upsert_registry([RegistryEntry("t.a.v1", "desc", "python3")])
    entry = store.registry_entry("t.a.v1")
    assert entry is not None and (entry.runtime, entry.is_enabled) == ("python3", False)


def test_soft_delete_of_an_unknown_run_says_so() -> None:
    with pytest.raises(RunNotFoundError):
        MemoryStore(ManualClock()).soft_delete(uuid.uuid4())


async def test_each_call_yields_to_the_loop_once() -> None:
    store = MemoryStore(ManualClock())
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    task = asyncio.create_task(other())
    await store.db_now()
    assert ran == ["other"], "a store call is an await point, as a database round trip is"
    await task


def test_like_is_sql_like() -> None:
    assert like("billing.invoice.v1", "billing.%")
    assert like("a_b", "a\\_b") and not like("aXb", "a\\_b")
    assert like("a\nb", "a_b"), "wildcards match newlines, as in SQL"
    assert not like("Billing", "billing"), "LIKE is case-sensitive"
    with pytest.raises(ValueError, match="escape"):
        like("a\\", "a\\")
