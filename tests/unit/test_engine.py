"""The runtime engine on the in-memory store: no database, no sleeps, test signals only."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from tests.waiting import eventually
from workfleet import Fail, Plugin, Retry, Run, SyncRun
from workfleet.discovery import ExecutorRegistry
from workfleet.models import NewRun, Outcome, RunStatus
from workfleet.retry import ConstantBackoff
from workfleet.runtime.engine import Engine
from workfleet.settings import RuntimeSettings
from workfleet.testing import ManualClock, MemoryStore, RecordingObserver

gate = asyncio.Event()
executed: list[Any] = []
concurrent_now = 0
concurrent_max = 0


def make_plugin() -> Plugin:
    plugin = Plugin("unit", backoff=ConstantBackoff(0.0))

    @plugin.executor("u.ok.v1")
    async def ok(run: Run[Any]) -> dict[str, Any]:
        return {"got": run.payload}

    @plugin.executor("u.gated.v1")
    async def gated(run: Run[Any]) -> None:
        global concurrent_now, concurrent_max  # noqa: PLW0603 - test instrumentation
        concurrent_now += 1
        concurrent_max = max(concurrent_max, concurrent_now)
        try:
            await gate.wait()
        finally:
            concurrent_now -= 1

    @plugin.executor("u.flaky.v1", max_attempts=3)
    async def flaky(run: Run[Any]) -> str:
        if run.attempt < 3:
            raise RuntimeError(f"flake {run.attempt}")
        return "third time"

    @plugin.executor("u.retry.v1")
    async def retry(run: Run[Any]) -> None:
        raise Retry("later", after=0.0) if run.attempt == 1 else Fail("gave up")

    @plugin.executor("u.slow.v1", timeout=0.05)
    async def slow(run: Run[Any]) -> None:
        await asyncio.Event().wait()

    @plugin.executor("u.patient.v1")
    async def patient(run: Run[Any]) -> str:
        await run.cancelled.wait()
        return "noticed"

    @plugin.executor("u.self-cancel.v1", max_attempts=1)
    async def self_cancel(run: Run[Any]) -> None:
        raise asyncio.CancelledError("raised by the executor, not a stop")

    @plugin.executor("u.stubborn.v1")
    async def stubborn(run: Run[Any]) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.02)  # still working after its cancellation
            return "swallowed"
        return "never"

    @plugin.executor("u.thread.v1")
    def in_thread(run: SyncRun[Any]) -> str:
        return threading.current_thread().name

    @plugin.executor("u.mark.v1")
    async def mark(run: Run[Any]) -> None:
        executed.append(run.id)

    @plugin.executor("u.nul-result.v1")
    async def nul_result(run: Run[Any]) -> str:
        return "before\x00after"

    @plugin.executor("u.nul-error.v1", max_attempts=1)
    async def nul_error(run: Run[Any]) -> None:
        raise ValueError("bad\x00byte")

    return plugin


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Engine, MemoryStore, RecordingObserver, ManualClock]]:
    global concurrent_now, concurrent_max  # noqa: PLW0603
    concurrent_now = concurrent_max = 0
    gate.clear()
    clock = ManualClock()
    store = MemoryStore(clock)
    observer = RecordingObserver()
    config = RuntimeSettings(
        worker_id="w1",
        prefixes=["u.%=3"],
        poll_interval=3600,  # only signals wake the loop in these tests
        fetch_cooldown=0,
        cancel_grace=0.01,
        drain_timeout=5,
    )
    engine = Engine(
        store,
        ExecutorRegistry.from_plugins([make_plugin()]),
        config,
        observer,
        structlog.get_logger(),
    )
    task = asyncio.create_task(engine.run())
    yield engine, store, observer, clock
    gate.set()
    if not task.done():
        await engine.stop(0.5)
    await asyncio.wait_for(task, 5)


async def submit(engine: Engine, store: MemoryStore, run_type: str, n: int = 1) -> list[Any]:
    results = await store.enqueue_many([NewRun(run_type, {"i": i}) for i in range(n)])
    engine.notify_inserted(run_type)
    return [r.id for r in results]


async def test_runs_succeed_with_results(rig: Any) -> None:
    engine, store, observer, _ = rig
    ids = await submit(engine, store, "u.ok.v1", 5)
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 5)
    await engine.completer.wait_idle()
    for i, run_id in enumerate(ids):
        record = await store.get(run_id)
        assert record.status is RunStatus.SUCCEEDED
        assert record.result == {"got": {"i": i}}


async def test_concurrency_is_never_exceeded(rig: Any) -> None:
    engine, store, observer, _ = rig
    await submit(engine, store, "u.gated.v1", 10)
    await eventually(lambda: concurrent_now == 3)
    assert len(observer.started) == 3, "the other runs wait for a free slot"
    gate.set()
    await observer.wait_for(lambda: observer.finished == 10)
    assert concurrent_max == 3


async def test_exceptions_retry_until_success(rig: Any) -> None:
    engine, store, observer, _ = rig
    [run_id] = await submit(engine, store, "u.flaky.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 1)
    await engine.completer.wait_idle()
    record = await store.get(run_id)
    assert (record.status, record.attempt, record.last_error) == (
        RunStatus.SUCCEEDED,
        2,
        "RuntimeError: flake 2",
    )
    assert observer.outcomes[Outcome.RETRIED] == 2


async def test_retry_then_fail(rig: Any) -> None:
    engine, store, observer, _ = rig
    [run_id] = await submit(engine, store, "u.retry.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.FAILED] == 1)
    await engine.completer.wait_idle()
    record = await store.get(run_id)
    assert (record.status, record.attempt, record.last_error) == (
        RunStatus.FAILED,
        2,
        "Fail: gave up",
    )


async def test_timeout_fails_the_attempt(rig: Any) -> None:
    engine, store, observer, _ = rig
    [run_id] = await submit(engine, store, "u.slow.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.TIMED_OUT] >= 1)
    await engine.completer.wait_idle()
    record = await store.get(run_id)
    assert record.last_error == "timed out after 0.05s"
    assert record.attempt >= 1


async def test_cancellation_reaches_the_running_executor(rig: Any) -> None:
    engine, store, observer, _ = rig
    [run_id] = await submit(engine, store, "u.patient.v1")
    await observer.wait_for(lambda: len(observer.started) == 1)
    assert await store.cancel(run_id)
    engine.notify_cancelled(run_id)
    await observer.wait_for(lambda: observer.outcomes[Outcome.CANCELLED] == 1)
    record = await store.get(run_id)
    assert record.status is RunStatus.CANCELLED, "the executor's return is not written"


async def test_an_executor_raising_cancelled_error_itself_is_a_failed_attempt(rig: Any) -> None:
    """Async executors without a timeout run in the execution's own task: a CancelledError the
    executor raises (no stop was asked) fails the attempt and leaves the worker running."""
    engine, store, observer, _ = rig
    [run_id] = await submit(engine, store, "u.self-cancel.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.FAILED] == 1)
    await engine.completer.wait_idle()
    record = await store.get(run_id)
    assert (record.status, record.last_error) == (
        RunStatus.FAILED,
        "RuntimeError: executor task was cancelled",
    )
    [ok_id] = await submit(engine, store, "u.ok.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 1)
    assert (await store.get(ok_id)).status is RunStatus.SUCCEEDED


async def test_an_executor_that_swallows_its_cancellation_is_still_stopped(rig: Any) -> None:
    """The stop's cancellation of the execution's task is taken back by the execution; what the
    executor returns afterwards is not written, and the loop goes on claiming."""
    engine, store, observer, _ = rig
    [run_id] = await submit(engine, store, "u.stubborn.v1")
    await observer.wait_for(lambda: len(observer.started) == 1)
    assert await store.cancel(run_id)
    engine.notify_cancelled(run_id)
    await observer.wait_for(lambda: observer.outcomes[Outcome.CANCELLED] == 1)
    assert (await store.get(run_id)).status is RunStatus.CANCELLED
    [ok_id] = await submit(engine, store, "u.ok.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 1)
    assert (await store.get(ok_id)).status is RunStatus.SUCCEEDED


async def test_heartbeat_notices_a_lost_lease(rig: Any) -> None:
    engine, store, observer, clock = rig
    [run_id] = await submit(engine, store, "u.patient.v1")
    await observer.wait_for(lambda: len(observer.started) == 1)
    clock.advance(31)  # past the 30 s lease: the sweep reclaims it
    await store.reclaim_expired()
    await engine.heartbeat_once()
    await observer.wait_for(lambda: observer.outcomes[Outcome.LEASE_LOST] == 1)
    record = await store.get(run_id)
    assert (record.status, record.attempt) == (RunStatus.PENDING, 1)


async def test_heartbeat_extends_held_leases(rig: Any) -> None:
    engine, store, observer, clock = rig
    [run_id] = await submit(engine, store, "u.gated.v1")
    await observer.wait_for(lambda: len(observer.started) == 1)
    clock.advance(20)
    await engine.heartbeat_once()
    record = await store.get(run_id)
    assert (record.lease_until - clock.now()).total_seconds() == pytest.approx(30)


async def test_sync_executor_runs_in_a_thread(rig: Any) -> None:
    engine, store, observer, _ = rig
    [run_id] = await submit(engine, store, "u.thread.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 1)
    await engine.completer.wait_idle()
    assert (await store.get(run_id)).result.startswith("workfleet-exec")


async def test_notifications_wake_only_matching_loops(rig: Any) -> None:
    engine, _store, observer, _ = rig
    engine.notify_inserted("other.type.v1")
    await asyncio.sleep(0)
    assert observer.wakes["notify"] == 0


async def test_notifications_of_many_types_are_remembered_within_a_bound(rig: Any) -> None:
    """Which loops serve a type is remembered per type, for at most SERVING_TYPES types: a
    stream of notifications naming ever new types costs no unbounded memory, and a type seen
    before the memory started over still wakes its loop."""
    from workfleet.runtime.engine import SERVING_TYPES

    engine, store, observer, _ = rig
    await submit(engine, store, "u.ok.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 1)
    for i in range(SERVING_TYPES * 2 + 5):
        engine.notify_inserted(f"junk.{i}.v1")
        assert len(engine._serving) <= SERVING_TYPES
    await asyncio.sleep(0)
    assert "u.ok.v1" not in engine._serving, "the memory started over"
    await submit(engine, store, "u.ok.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 2)


async def test_stop_drains_then_releases(rig: Any) -> None:
    engine, store, observer, _ = rig
    ids = await submit(engine, store, "u.gated.v1", 2)
    await observer.wait_for(lambda: len(observer.started) == 2)
    await engine.stop(drain_timeout=0.0)
    for run_id in ids:
        record = await store.get(run_id)
        assert (record.status, record.attempt) == (RunStatus.PENDING, 0)
    assert observer.outcomes[Outcome.RELEASED] == 2
    assert observer.is_drained


async def test_stop_lets_quick_runs_finish(rig: Any) -> None:
    engine, store, observer, _ = rig
    ids = await submit(engine, store, "u.gated.v1", 2)
    await observer.wait_for(lambda: len(observer.started) == 2)
    stopping = asyncio.create_task(engine.stop(drain_timeout=5))
    gate.set()
    await stopping
    for run_id in ids:
        assert (await store.get(run_id)).status is RunStatus.SUCCEEDED


async def test_nul_characters_fail_the_run_instead_of_the_write(rig: Any) -> None:
    """PostgreSQL cannot store NUL: a result with one fails that run, an error message with one
    is spelt out, and the batched write (shared with other runs) goes through."""
    engine, store, observer, _ = rig
    [bad_result] = await submit(engine, store, "u.nul-result.v1")
    [bad_error] = await submit(engine, store, "u.nul-error.v1")
    [fine] = await submit(engine, store, "u.ok.v1")
    await observer.wait_for(lambda: observer.finished == 3)
    await engine.completer.wait_idle()
    record = await store.get(bad_result)
    assert record.status is RunStatus.FAILED
    assert "NUL character" in (record.last_error or "")
    record = await store.get(bad_error)
    assert (record.status, record.last_error) == (RunStatus.FAILED, "ValueError: bad\\x00byte")
    assert (await store.get(fine)).status is RunStatus.SUCCEEDED


class _SlowWrites(MemoryStore):
    """Outcome writes wait for ``gate``: a database that is slow to commit."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.gate = asyncio.Event()

    async def complete_many(self, worker_id: str, completions: Any) -> Any:
        await self.gate.wait()
        return await super().complete_many(worker_id, completions)


def start_engine(store: MemoryStore) -> tuple[Engine, RecordingObserver, asyncio.Task[None]]:
    """An engine with one ``u.%`` loop of concurrency 3 on ``store``, running in a task."""
    observer = RecordingObserver()
    config = RuntimeSettings(
        worker_id="w1", prefixes=["u.%=3"], poll_interval=3600, fetch_cooldown=0
    )
    registry = ExecutorRegistry.from_plugins([make_plugin()])
    engine = Engine(store, registry, config, observer, structlog.get_logger())
    return engine, observer, asyncio.create_task(engine.run())


async def test_unwritten_outcomes_hold_back_claims() -> None:
    """Slots free before outcomes are written, but leases held stay <= 2 x concurrency."""
    store = _SlowWrites(ManualClock())
    engine, observer, task = start_engine(store)
    try:
        await submit(engine, store, "u.ok.v1", 20)
        await observer.wait_for(lambda: len(observer.started) == 6)
        for _ in range(20):  # give the loop every chance to claim more than it may
            await asyncio.sleep(0)
        leased = await store.list_runs(status=RunStatus.LEASED, limit=100)
        assert len(leased) == 6, "3 outcomes awaiting their write + 3 more executed"
        assert len(observer.started) == 6
        store.gate.set()
        await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 20)
    finally:
        store.gate.set()
        await engine.stop(0.5)
        await asyncio.wait_for(task, 5)


class _SeesStarts(MemoryStore):
    """Records, at every ``next_due``, which runs had reached their executor."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.seen_at_next_due: list[list[Any]] = []

    async def next_due(self, filt: Any) -> Any:
        self.seen_at_next_due.append(list(executed))
        return await super().next_due(filt)


async def test_claimed_runs_start_before_the_next_due_round_trip() -> None:
    """Pickup latency is one claim, not a claim plus the next-due query."""
    executed.clear()
    store = _SeesStarts(ManualClock())
    engine, observer, task = start_engine(store)
    try:
        [run_id] = await submit(engine, store, "u.mark.v1")
        await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 1)
        after_claim = [seen for seen in store.seen_at_next_due if seen]
        assert after_claim, "the loop asked for the next due time after its claim"
        assert store.seen_at_next_due[-1] == [run_id], "the executor ran before that query"
    finally:
        await engine.stop(0.5)
        await asyncio.wait_for(task, 5)


async def test_the_default_timeout_and_backoff_come_from_the_settings() -> None:
    """WORKFLEET_DEFAULT_TIMEOUT applies to executors without a timeout of their own, and
    WORKFLEET_BACKOFF* to executors without a backoff of their own."""
    plugin = Plugin("defaults")

    @plugin.executor("d.forever.v1", max_attempts=2)
    async def forever(run: Run[Any]) -> None:
        await asyncio.Event().wait()

    store = MemoryStore(ManualClock())
    observer = RecordingObserver()
    settings = RuntimeSettings(
        worker_id="w1",
        prefixes=["d.%=1"],
        poll_interval=3600,
        fetch_cooldown=0,
        cancel_grace=0.01,
        default_timeout=0.05,
        backoff="constant",
        backoff_base_seconds=42,
    )
    registry = ExecutorRegistry.from_plugins([plugin])
    engine = Engine(store, registry, settings, observer, structlog.get_logger())
    task = asyncio.create_task(engine.run())
    try:
        [run] = await store.enqueue_many([NewRun("d.forever.v1", {})])
        engine.notify_inserted("d.forever.v1")
        await observer.wait_for(lambda: observer.outcomes[Outcome.TIMED_OUT] == 1)
        await engine.completer.wait_idle()
        record = await store.get(run.id)
        assert (record.status, record.last_error) == (RunStatus.PENDING, "timed out after 0.05s")
        assert (record.run_at - record.updated_at).total_seconds() == 42
    finally:
        await engine.stop(0.5)
        await asyncio.wait_for(task, 5)


def test_workers_serving_workflows_get_connections_for_their_checkpoints() -> None:
    from workfleet.discovery import ExecutorRegistry
    from workfleet.plugin import Plugin
    from workfleet.runtime.loops import default_pool_size, loop_specs
    from workfleet.settings import load_settings

    plain, flows = Plugin("plain"), Plugin("flows")

    @plain.executor("p.one.v1")
    async def one(run: object) -> None: ...

    @flows.workflow("f.one.v1")
    async def flow(wf: object) -> None: ...

    settings = load_settings(database_url="postgresql://x@h/db", concurrency=50).runtime
    only_runs = ExecutorRegistry.from_plugins([plain])
    with_flows = ExecutorRegistry.from_plugins([plain, flows])
    assert default_pool_size(loop_specs(settings, only_runs), only_runs) == 5
    assert default_pool_size(loop_specs(settings, with_flows), with_flows) == 5 + 16
