"""What a failed attempt leaves behind: the error per attempt in its event, the worker's log
line, and no exception asyncio reports as lost (operator and newcomer experience)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from workfleet import Fail, Plugin, Run
from workfleet.cli.render import render_run, run_json
from workfleet.discovery import ExecutorRegistry
from workfleet.encoding import MAX_TRACEBACK_CHARS, MAX_TRACEBACK_FRAMES
from workfleet.history import attempts, shown_data
from workfleet.models import EventType, NewRun, Outcome, RunStatus
from workfleet.retry import ConstantBackoff
from workfleet.runtime.engine import Engine
from workfleet.settings import RuntimeSettings
from workfleet.testing import ManualClock, MemoryStore, RecordingObserver


def _deep(n: int) -> None:
    if n == 0:
        raise ValueError("cannot reach postgresql://app:hunter2@db.example.com/app")
    _deep(n - 1)


def make_plugin() -> Plugin:
    plugin = Plugin("failures", backoff=ConstantBackoff(120.0))

    @plugin.executor("f.deep.v1", max_attempts=2)
    async def deep(run: Run[Any]) -> None:
        _deep(60)

    @plugin.executor("f.stubborn.v1", timeout=0.02)
    async def stubborn(run: Run[Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise Fail("cancelled") from None  # as the video example does

    @plugin.executor("f.ok.v1")
    async def ok(run: Run[Any]) -> str:
        return "fine"

    @plugin.executor("f.waits.v1")
    async def waits(run: Run[Any]) -> None:
        await run.cancelled.wait()
        raise Fail("cancelled")

    return plugin


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Engine, MemoryStore, RecordingObserver]]:
    store = MemoryStore(ManualClock())
    observer = RecordingObserver()
    config = RuntimeSettings(
        worker_id="w-failures",
        prefixes=["f.%=3"],
        poll_interval=3600,
        fetch_cooldown=0,
        cancel_grace=0.01,
        drain_timeout=5,
    )
    registry = ExecutorRegistry.from_plugins([make_plugin()])
    engine = Engine(store, registry, config, observer, structlog.get_logger())
    task = asyncio.create_task(engine.run())
    yield engine, store, observer
    if not task.done():
        await engine.stop(0.5)
    await asyncio.wait_for(task, 5)


async def submit(engine: Engine, store: MemoryStore, run_type: str) -> Any:
    [result] = await store.enqueue_many([NewRun(run_type, {})])
    engine.notify_inserted(run_type)
    return result.id


async def test_a_failed_attempt_stores_its_error_type_message_and_bounded_traceback(
    rig: Any,
) -> None:
    engine, store, observer = rig
    run_id = await submit(engine, store, "f.deep.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.RETRIED] == 1)
    await engine.completer.wait_idle()
    [retried] = [e for e in await store.events(run_id) if e.event_type is EventType.RETRIED]
    data = retried.data
    assert data["error_type"] == "ValueError"
    assert data["message"] == "cannot reach postgresql://app:***@db.example.com/app"
    assert data["worker_id"] == "w-failures"
    assert data["started_at"]
    tb = data["traceback"]
    assert "hunter2" not in tb and "hunter2" not in data["error"]
    assert tb.rstrip().endswith("ValueError: cannot reach postgresql://app:***@db.example.com/app")
    assert "_deep" in tb
    # the last frames only: of 62, the innermost MAX_TRACEBACK_FRAMES (three recursive frames
    # shown, the rest of the recursion folded by the traceback module, then the raising frame)
    assert tb.count('  File "') == 4
    assert f"[Previous line repeated {MAX_TRACEBACK_FRAMES - 4} more times]" in tb
    assert len(tb) <= MAX_TRACEBACK_CHARS
    record = await store.get(run_id)
    assert record.status is RunStatus.PENDING
    assert record.last_error == "ValueError: cannot reach postgresql://app:***@db.example.com/app"


async def test_the_worker_logs_the_error_and_the_next_try_on_the_failure_line(rig: Any) -> None:
    engine, store, observer = rig
    with capture_logs() as logs:
        run_id = await submit(engine, store, "f.deep.v1")
        await observer.wait_for(lambda: observer.outcomes[Outcome.RETRIED] == 1)
        await engine.completer.wait_idle()
        await asyncio.sleep(0)
    [line] = [entry for entry in logs if entry["event"] == "run retried"]
    # the run's own fields, bound on the line (it is written from the completer's task)
    assert (line["run_id"], line["type"], line["attempt"]) == (str(run_id), "f.deep.v1", 1)
    assert line["error_type"] == "ValueError"
    assert line["error"].startswith("ValueError: cannot reach")
    assert "Traceback" in line["traceback"] and "hunter2" not in line["traceback"]
    assert line["retry_in_seconds"] == pytest.approx(120.0, abs=13)
    assert line["next_try_at"]


def _lost_exceptions(loop: asyncio.AbstractEventLoop) -> list[str]:
    lost: list[str] = []
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        lost.append(str(context.get("message")))
        if previous is not None:
            previous(loop, context)

    loop.set_exception_handler(handler)
    return lost


async def test_a_timed_out_executor_leaves_no_unretrieved_exception(rig: Any) -> None:
    engine, store, observer = rig
    loop = asyncio.get_running_loop()
    lost = _lost_exceptions(loop)
    try:
        await submit(engine, store, "f.stubborn.v1")
        await observer.wait_for(lambda: observer.outcomes[Outcome.TIMED_OUT] == 1)
        await engine.completer.wait_idle()
        await asyncio.wait_for(engine.stop(1.0), 5)
        for _ in range(5):  # futures report a lost exception when they are collected
            await asyncio.sleep(0.01)
            gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert not [m for m in lost if "never retrieved" in m], lost


async def test_inspect_counts_attempts_as_people_do_and_lists_each_one(rig: Any) -> None:
    engine, store, observer = rig
    run_id = await submit(engine, store, "f.deep.v1")  # the executor allows 2 of the row's 3
    await observer.wait_for(lambda: observer.outcomes[Outcome.RETRIED] == 1)
    await engine.completer.wait_idle()
    store.clock.advance(200)  # past the backoff
    engine.notify_inserted("f.deep.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.FAILED] == 1)
    await engine.completer.wait_idle()
    record, events = await store.get(run_id), await store.events(run_id)
    assert (record.status, record.attempt, record.max_attempts) == (RunStatus.FAILED, 2, 3)
    text = render_run(record, events)
    assert "attempts         2 of 2\n" in text
    rows = text.split("attempts:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert rows[0].split() == ["#", "STARTED", "ENDED", "OUTCOME", "WORKER", "ERROR"]
    assert [r.split()[0] for r in rows[1:]] == ["1", "2"]
    assert "retried" in rows[1] and "failed" in rows[2]
    assert all("w-failures" in r and "ValueError: cannot reach" in r for r in rows[1:])
    assert "last traceback (attempt 2):" in text
    assert all(len(line) <= 120 for line in text.split("events:")[0].splitlines())
    document = run_json(record, events)
    assert (document["attempts_used"], document["max_attempts"]) == (2, 2)


async def test_a_run_that_succeeded_first_time_used_one_attempt(rig: Any) -> None:
    engine, store, observer = rig
    run_id = await submit(engine, store, "f.ok.v1")
    await observer.wait_for(lambda: observer.outcomes[Outcome.SUCCEEDED] == 1)
    await engine.completer.wait_idle()
    record, events = await store.get(run_id), await store.events(run_id)
    text = render_run(record, events)
    assert "attempts         1 of 3\n" in text
    assert "succeeded" in text.split("attempts:\n", 1)[1].splitlines()[1]


async def test_a_cancelled_running_run_counts_its_attempt_like_its_other_events(
    rig: Any,
) -> None:
    engine, store, observer = rig
    run_id = await submit(engine, store, "f.waits.v1")
    await observer.wait_for(lambda: len(observer.started) == 1)
    assert await store.cancel(run_id)
    engine.notify_cancelled(run_id)
    await observer.wait_for(lambda: observer.outcomes[Outcome.CANCELLED] == 1)
    events = await store.events(run_id)
    shown = {str(e.event_type): shown_data(e) for e in events}
    assert shown["cancelled"]["attempt"] == shown["leased"]["attempt"] == 1
    [attempt] = attempts(events, RunStatus.CANCELLED)
    assert attempt.outcome == "cancelled"
