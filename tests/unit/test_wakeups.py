"""How a lease loop waits and paces its claims: the Wakeup signal, the ClaimPacer, and the
producer's use of both on the in-memory store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from tests.waiting import eventually
from workfleet import Plugin, Run
from workfleet.discovery import ExecutorRegistry
from workfleet.models import NewRun
from workfleet.runtime.engine import Engine
from workfleet.runtime.wakeups import CLAIM_BURST, ClaimPacer, Wakeup
from workfleet.settings import RuntimeSettings
from workfleet.testing import ManualClock, MemoryStore, RecordingObserver

# --- ClaimPacer --------------------------------------------------------------------------------


def test_pacer_lets_a_burst_through_then_spaces_claims() -> None:
    pacer = ClaimPacer(0.25, burst=4)
    now = 100.0
    for _ in range(4):
        assert pacer.delay(now) == 0.0
        pacer.claimed(now)
    # the fifth claim at the same instant waits one interval; then one per interval
    assert pacer.delay(now) == 0.25
    pacer.claimed(now + 0.25)
    assert pacer.delay(now + 0.25) == 0.25
    assert pacer.delay(now + 0.5) == 0.0


def test_a_stream_at_the_rate_keeps_its_allowance_and_a_faster_one_is_held_to_it() -> None:
    pacer = ClaimPacer(0.25, burst=4)
    for i in range(20):  # one claim per interval: never held back
        assert pacer.delay(100.0 + i * 0.25) == 0.0
        pacer.claimed(100.0 + i * 0.25)
    pacer = ClaimPacer(0.25, burst=4)
    now, made = 100.0, 0
    while now < 110.0:  # wake-ups every 1/16 s for 10 s: claims as often as allowed
        if pacer.delay(now) == 0.0:
            pacer.claimed(now)
            made += 1
        now += 0.0625
    assert made == 4 + 39  # the burst, then one per interval from the first one's end


def test_pacer_forgets_after_a_quiet_spell() -> None:
    pacer = ClaimPacer(0.25, burst=4)
    for _ in range(4):
        pacer.claimed(100.0)
    assert pacer.delay(100.0) > 0, "the allowance is spent"
    # quiet for four intervals: the whole burst is available again
    for _ in range(4):
        assert pacer.delay(101.0) == 0.0
        pacer.claimed(101.0)
    assert pacer.delay(101.0) == 0.25


def test_pacer_with_burst_one_is_a_plain_cooldown() -> None:
    pacer = ClaimPacer(0.5, burst=1)
    pacer.claimed(10.0)
    assert pacer.delay(10.2) == pytest.approx(0.3)
    assert pacer.delay(10.5) == 0.0


def test_pacer_without_interval_never_waits() -> None:
    pacer = ClaimPacer(0.0)
    for _ in range(100):
        assert pacer.delay(5.0) == 0.0
        pacer.claimed(5.0)


def test_pacer_refuses_an_empty_burst() -> None:
    with pytest.raises(ValueError, match="burst"):
        ClaimPacer(0.01, burst=0)


# --- Wakeup ------------------------------------------------------------------------------------


async def test_wakeup_set_before_the_wait_returns_at_once() -> None:
    wake = Wakeup()
    wake.set()
    wake.set()  # twice is once
    assert await wake.wait(3600) is True
    wake.clear()
    assert not wake.is_set()


async def test_wakeup_wakes_a_waiter_and_times_out_without_one() -> None:
    wake = Wakeup()
    waiter = asyncio.create_task(wake.wait(3600))
    await asyncio.sleep(0)
    assert not waiter.done()
    wake.set()
    assert await asyncio.wait_for(waiter, 1) is True
    wake.clear()
    started = time.monotonic()
    assert await wake.wait(0.02) is False
    assert time.monotonic() - started >= 0.015


async def test_a_cancelled_wait_leaves_the_wakeup_usable() -> None:
    wake = Wakeup()
    waiter = asyncio.create_task(wake.wait(3600))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    wake.set()  # no waiter left behind to resolve
    assert await wake.wait(3600) is True


# --- the producer ------------------------------------------------------------------------------

gate = asyncio.Event()

plugin = Plugin("wakeups")


@plugin.executor("p.ok.v1")
async def ok(run: Run[Any]) -> None:
    return None


@plugin.executor("p.gated.v1")
async def gated(run: Run[Any]) -> None:
    await gate.wait()


class CountingStore(MemoryStore):
    """Counts claim statements, made by the loop or sent from a NOTIFY's callback (the observer
    counts claimed runs)."""

    def __init__(self) -> None:
        super().__init__(ManualClock())
        self.claim_calls = 0
        self.sent_calls = 0

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.claim_calls += 1
        return await super().claim(*args, **kwargs)

    def claim_now(self, *args: Any, **kwargs: Any) -> Any:
        self.claim_calls += 1
        self.sent_calls += 1
        return super().claim_now(*args, **kwargs)


@pytest.fixture
async def paced() -> AsyncIterator[tuple[Engine, CountingStore, RecordingObserver]]:
    """One ``p.%`` loop of concurrency 3 whose cooldown (a minute) no test waits out."""
    gate.clear()
    store = CountingStore()
    observer = RecordingObserver()
    settings = RuntimeSettings(
        worker_id="w-pace", prefixes=["p.%=3"], poll_interval=3600, fetch_cooldown=60
    )
    engine = Engine(
        store, ExecutorRegistry.from_plugins([plugin]), settings, observer, structlog.get_logger()
    )
    task = asyncio.create_task(engine.run())
    await eventually(lambda: store.claim_calls == 1)  # the start claim (found nothing)
    yield engine, store, observer
    gate.set()
    await engine.stop(0.5)
    await asyncio.wait_for(task, 5)


async def submit_one(engine: Engine, store: MemoryStore, run_type: str) -> None:
    await store.enqueue_many([NewRun(run_type, {})])
    engine.notify_inserted(run_type)


async def test_wake_ups_in_quick_succession_are_claimed_at_once_then_paced(paced: Any) -> None:
    """The start claim and the next CLAIM_BURST - 1 wake-ups claim at once; the one after
    that waits out the cooldown."""
    engine, store, observer = paced
    for n in range(1, CLAIM_BURST):
        await submit_one(engine, store, "p.ok.v1")
        await observer.wait_for(lambda n=n: len(observer.started) == n)
    assert store.claim_calls == CLAIM_BURST
    await submit_one(engine, store, "p.ok.v1")
    await asyncio.sleep(0.1)
    assert len(observer.started) == CLAIM_BURST - 1, "the allowance is spent: paced"
    assert store.claim_calls == CLAIM_BURST


async def test_a_full_loop_waits_for_a_slot_instead_of_spinning(paced: Any) -> None:
    """Every slot taken and a NOTIFY arrives: the loop looks once and waits for a slot (it
    used to turn without pause until one freed), then claims the waiting run at once."""
    engine, store, observer = paced
    await store.enqueue_many([NewRun("p.gated.v1", {}) for _ in range(3)])
    engine.notify_inserted("p.gated.v1")
    await observer.wait_for(lambda: len(observer.started) == 3)
    woke = sum(observer.wakes.values())
    await submit_one(engine, store, "p.gated.v1")  # no slot for it
    await asyncio.sleep(0.05)
    assert sum(observer.wakes.values()) - woke <= 2
    assert len(observer.started) == 3
    gate.set()  # slots free: the loop claims the fourth run without waiting for the pacer
    await observer.wait_for(lambda: len(observer.started) == 4)


class SlowDue(MemoryStore):
    """A store whose next-due reads wait for ``release`` (a slow query), counting them."""

    def __init__(self) -> None:
        super().__init__()  # the real clock: future runs come due by themselves
        self.release = asyncio.Event()
        self.reads = 0
        self.cancelled_reads = 0

    async def next_due(self, filt: Any) -> Any:
        self.reads += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled_reads += 1
            raise
        return await super().next_due(filt)


def engine_on(store: MemoryStore) -> tuple[Engine, RecordingObserver]:
    observer = RecordingObserver()
    settings = RuntimeSettings(worker_id="w-due", prefixes=["p.%=3"], poll_interval=3600)
    engine = Engine(
        store, ExecutorRegistry.from_plugins([plugin]), settings, observer, structlog.get_logger()
    )
    return engine, observer


async def test_a_notify_during_the_next_due_read_is_claimed_at_once() -> None:
    """The next-due read runs beside the loop: a run inserted while it is on the wire is
    claimed without waiting for its answer."""
    store = SlowDue()
    engine, observer = engine_on(store)
    task = asyncio.create_task(engine.run())
    try:
        await submit_one(engine, store, "p.ok.v1")
        await observer.wait_for(lambda: len(observer.started) == 1)
        await eventually(lambda: store.reads >= 1)
        await submit_one(engine, store, "p.ok.v1")
        await observer.wait_for(lambda: len(observer.started) == 2)
        assert not store.release.is_set(), "claimed while the read was still waiting"
    finally:
        store.release.set()
        await engine.stop(0.5)
        await asyncio.wait_for(task, 5)


async def test_a_stop_does_not_wait_for_the_next_due_read() -> None:
    store = SlowDue()
    engine, observer = engine_on(store)
    task = asyncio.create_task(engine.run())
    await submit_one(engine, store, "p.ok.v1")
    await eventually(lambda: store.reads >= 1)
    await engine.stop(0.5)
    await asyncio.wait_for(task, 5)
    assert store.cancelled_reads == store.reads, "no read outlives its loop"


async def test_a_future_run_is_claimed_when_due_not_at_the_next_poll() -> None:
    """With an hour's poll interval, a run due in a quarter second starts about then: the
    background read of the next due time set a wake-up."""
    store = MemoryStore()
    engine, observer = engine_on(store)
    task = asyncio.create_task(engine.run())
    try:
        await store.enqueue_many([NewRun("p.ok.v1", {}, delay=0.25)])
        engine.notify_inserted("p.ok.v1")
        started = time.monotonic()
        await observer.wait_for(lambda: len(observer.started) == 1)
        assert 0.2 <= time.monotonic() - started < 5
    finally:
        await engine.stop(0.5)
        await asyncio.wait_for(task, 5)


ORDER: list[str] = []


@plugin.executor("p.mark.v1")
async def mark(run: Run[Any]) -> None:
    ORDER.append("executor")


class OrderObserver(RecordingObserver):
    """Records when the loop's claim bookkeeping happens, beside the executor's start."""

    def claimed(self, prefix: str, count: int, seconds: float) -> None:
        if count:
            ORDER.append("claimed")
        super().claimed(prefix, count, seconds)

    def run_started(self, prefix: str, run_type: str, queue_wait: float) -> None:
        ORDER.append("run_started")
        super().run_started(prefix, run_type, queue_wait)


async def test_a_claimed_run_starts_before_the_loops_bookkeeping() -> None:
    """The executor's first step comes right after the claim; the metrics of the claim and
    of the start follow it (on a pickup's path every step is slow after a quiet spell)."""
    ORDER.clear()
    store = MemoryStore()
    observer = OrderObserver()
    settings = RuntimeSettings(worker_id="w-order", prefixes=["p.%=3"], poll_interval=3600)
    engine = Engine(
        store, ExecutorRegistry.from_plugins([plugin]), settings, observer, structlog.get_logger()
    )
    task = asyncio.create_task(engine.run())
    try:
        await store.enqueue_many([NewRun("p.mark.v1", {})])
        engine.notify_inserted("p.mark.v1")
        await observer.wait_for(lambda: len(observer.started) == 1)
        first = ORDER.index("executor")
        assert {"claimed", "run_started"} <= set(ORDER[first:]), ORDER
        assert not {"claimed", "run_started"} & set(ORDER[:first]), ORDER
    finally:
        await engine.stop(0.5)
        await asyncio.wait_for(task, 5)
