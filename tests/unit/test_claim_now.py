"""A NOTIFY that finds its lease loop waiting sends the claim from the listener's callback
(``RunQueue.claim_now``), on the in-memory store: what comes first, twice, unsendable, or
during a stop or a cancellation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest
import structlog

from workfleet import Plugin, Run
from workfleet.discovery import ExecutorRegistry
from workfleet.models import ClaimedRun, NewRun, Outcome, RunStatus
from workfleet.runtime.engine import Engine
from workfleet.runtime.wakeups import Wakeup
from workfleet.settings import RuntimeSettings
from workfleet.store import SentClaim
from workfleet.testing import MemoryStore, RecordingObserver

plugin = Plugin("claim-now")


@plugin.executor("n.ok.v1")
async def ok(run: Run[Any]) -> None:
    return None


class Tracked:
    """A sent claim that tells its store when it is abandoned."""

    def __init__(self, inner: SentClaim, store: SendingStore) -> None:
        self.inner = inner
        self.store = store

    def __await__(self) -> Generator[Any, None, list[ClaimedRun]]:
        return self.inner.__await__()

    def abandon(self) -> None:
        self.store.abandoned += 1
        self.inner.abandon()


class SendingStore(MemoryStore):
    """Counts the claims the loop makes and those sent from a callback; ``refuse`` makes
    ``claim_now`` answer None (as PostgreSQL does before its statement is prepared)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop_claims = 0
        self.sent = 0
        self.abandoned = 0
        self.refuse = False

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.loop_claims += 1
        return await super().claim(*args, **kwargs)

    def claim_now(self, *args: Any, **kwargs: Any) -> Any:
        if self.refuse:
            return None
        sent = super().claim_now(*args, **kwargs)
        assert sent is not None
        self.sent += 1
        return Tracked(sent, self)


async def started() -> tuple[Engine, SendingStore, RecordingObserver, asyncio.Task[None]]:
    """One ``n.%`` loop of concurrency 3, an hour's poll, no pacing in the way; running, its
    start claim made, waiting."""
    store = SendingStore()
    observer = RecordingObserver()
    settings = RuntimeSettings(worker_id="w-now", prefixes=["n.%=3"], poll_interval=3600)
    engine = Engine(
        store, ExecutorRegistry.from_plugins([plugin]), settings, observer, structlog.get_logger()
    )
    task = asyncio.create_task(engine.run())
    await observer.wait_for(lambda: store.loop_claims == 1)
    await asyncio.sleep(0.05)  # the start claim's bookkeeping done: the loop waits
    return engine, store, observer, task


@pytest.fixture
async def running() -> AsyncIterator[tuple[Engine, SendingStore, RecordingObserver]]:
    """:func:`started`, stopped afterwards."""
    engine, store, observer, task = await started()
    yield engine, store, observer
    await engine.stop(0.5)
    await asyncio.wait_for(task, 5)


async def enqueue(store: MemoryStore) -> uuid.UUID:
    [created] = await store.enqueue_many([NewRun("n.ok.v1", {})])
    return created.id


def enqueue_at_once(store: MemoryStore) -> uuid.UUID:
    """Insert a run without yielding to the event loop: a commit that lands between two
    callbacks, after a claim was sent and before its loop resumed."""
    inserting = store.enqueue_many([NewRun("n.ok.v1", {})])
    try:
        while True:
            inserting.send(None)
    except StopIteration as done:
        return uuid.UUID(str(done.value[0].id))


async def status(store: MemoryStore, run_id: uuid.UUID) -> RunStatus:
    found = await store.get(run_id)
    assert found is not None
    return found.status


async def test_a_notify_to_a_waiting_loop_claims_in_its_callback(running: Any) -> None:
    engine, store, observer = running
    run_id = await enqueue(store)
    engine.notify_inserted("n.ok.v1")
    # before anything else has run: the claim was made in the notification's callback
    assert store.sent == 1
    assert await status(store, run_id) is RunStatus.LEASED
    await observer.wait_for(lambda: len(observer.started) == 1)
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 1)
    assert store.loop_claims == 1, "only the start claim came from the loop itself"


async def test_a_second_notify_while_the_sent_claim_is_out_is_claimed_after_it(
    running: Any,
) -> None:
    """The second run was inserted after the first claim was sent: the claim cannot see it,
    so its NOTIFY must not be absorbed by the claim on the wire."""
    engine, store, observer = running
    first = await enqueue(store)
    engine.notify_inserted("n.ok.v1")
    second = enqueue_at_once(store)
    engine.notify_inserted("n.ok.v1")
    engine.notify_inserted("n.ok.v1")  # and twice is once
    assert store.sent == 1, "the loop was no longer waiting"
    await observer.wait_for(lambda: len(observer.started) == 2)
    assert await status(store, first) is not RunStatus.PENDING
    assert await status(store, second) is not RunStatus.PENDING


async def test_a_notify_that_cannot_be_sent_at_once_wakes_the_loop(running: Any) -> None:
    engine, store, observer = running
    store.refuse = True
    await enqueue(store)
    engine.notify_inserted("n.ok.v1")
    await observer.wait_for(lambda: len(observer.started) == 1)
    assert (store.sent, store.loop_claims) == (0, 2)


async def test_a_claim_sent_just_before_a_stop_is_read_and_its_run_runs(running: Any) -> None:
    engine, store, observer = running
    run_id = await enqueue(store)
    engine.notify_inserted("n.ok.v1")
    assert store.sent == 1
    await engine.stop(1.0)
    assert await status(store, run_id) is RunStatus.SUCCEEDED, "never left leased"
    assert store.abandoned == 0
    engine.notify_inserted("n.ok.v1")  # after the stop: nothing is sent
    assert store.sent == 1


async def test_a_loop_cancelled_with_a_claim_out_abandons_it() -> None:
    engine, store, _, task = await started()
    await enqueue(store)
    engine.notify_inserted("n.ok.v1")
    [loop_task] = engine.loop_tasks
    loop_task.cancel()  # before it resumed to read the answer
    await asyncio.wait([loop_task])
    assert store.abandoned == 1
    await engine.stop(0.5)
    await asyncio.wait_for(task, 5)


async def test_a_nudge_wakes_the_waiter_without_setting_the_signal() -> None:
    wake = Wakeup()
    wake.nudge()  # no waiter: nothing to wake, nothing remembered
    assert await wake.wait(0.01) is False
    waiter = asyncio.create_task(wake.wait(3600))
    await asyncio.sleep(0)
    wake.nudge()
    assert await asyncio.wait_for(waiter, 1) is True
    assert not wake.is_set()
    wake.set()
    assert await wake.wait(3600) is True
