"""``workfleet.testing.run_executor``: one executor, one payload, its outcome, no worker."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from workfleet import Fail, Plugin, Retry, Run, Snooze, SyncRun
from workfleet.models import Outcome, RunStatus
from workfleet.retry import ConstantBackoff
from workfleet.testing import run_executor
from workfleet_examples import media, notify

plugin = Plugin("rx", backoff=ConstantBackoff(7.0))


@plugin.executor("rx.flaky.v1", max_attempts=2)
async def flaky(run: Run[Any]) -> dict[str, Any]:
    if run.attempt == 1:
        raise ConnectionError("upstream reset")
    return {"attempt": run.attempt, "payload": run.payload}


@plugin.executor("rx.control.v1")
async def control(run: Run[Any]) -> None:
    kind = run.payload["kind"]
    if kind == "fail":
        raise Fail("bad customer")
    if kind == "retry":
        raise Retry("later", after=30)
    raise Snooze(after=60)


@plugin.executor("rx.thread.v1")
def in_thread(run: SyncRun[Any]) -> str:
    return threading.current_thread().name


@plugin.executor("rx.slow.v1", timeout=0.05)
async def slow(run: Run[Any]) -> None:
    await asyncio.sleep(10)


@plugin.executor("rx.not-json.v1")
async def not_json(run: Run[Any]) -> object:
    return object()


async def test_an_exception_is_retried_with_the_backoff_then_succeeds() -> None:
    first = await run_executor(plugin, "rx.flaky.v1", {"k": 1})
    assert (first.outcome, first.status, first.retry_in) == (
        Outcome.RETRIED,
        RunStatus.PENDING,
        7.0,
    )
    assert first.retried and not first.failed
    assert first.error == "ConnectionError: upstream reset"
    assert (
        first.event["error_type"] == "ConnectionError" and "Traceback" in first.event["traceback"]
    )
    second = await run_executor(plugin, "rx.flaky.v1", {"k": 1}, attempt=2)
    assert second.succeeded and second.result == {"attempt": 2, "payload": {"k": 1}}


async def test_the_last_attempt_fails_for_good_under_the_executors_maximum() -> None:
    done = await run_executor(plugin, "rx.flaky.v1", {}, max_attempts=5)
    assert done.retried, "attempt 1 of the executor's 2"
    late = await run_executor(plugin, "rx.control.v1", {"kind": "fail"})
    assert late.failed and late.error == "Fail: bad customer"


@pytest.mark.parametrize(
    ("kind", "status", "outcome", "retry_in"),
    [
        ("retry", RunStatus.PENDING, Outcome.RETRIED, 30),
        ("snooze", RunStatus.PENDING, Outcome.SNOOZED, 60),
    ],
)
async def test_control_signals(
    kind: str, status: RunStatus, outcome: Outcome, retry_in: float
) -> None:
    done = await run_executor(plugin, "rx.control.v1", {"kind": kind})
    assert (done.status, done.outcome, done.retry_in) == (status, outcome, retry_in)


async def test_sync_executors_timeouts_and_unusable_results_behave_as_in_a_worker() -> None:
    threaded = await run_executor(plugin, "rx.thread.v1")
    assert threaded.succeeded and threaded.result.startswith("workfleet-test")
    timed_out = await run_executor(plugin, "rx.slow.v1")
    assert timed_out.outcome is Outcome.TIMED_OUT or timed_out.retried
    assert timed_out.error == "timed out after 0.05s"
    broken = await run_executor(plugin, "rx.not-json.v1")
    assert broken.failed and "not JSON-serialisable" in (broken.error or "")


async def test_an_example_plugin_with_validation_and_cancellation() -> None:
    bad = await run_executor(notify.plugin, "notify.sms.v1", {"phone": 5})
    assert bad.failed and "invalid sms payload" in (bad.error or "")
    video = {"video_id": "v1", "operations": ["transcode"], "seconds_per_operation": 30}
    cancelled = await run_executor(media.plugin, "media.video.v1", video, cancel_after=0.05)
    assert (cancelled.outcome, cancelled.status) == (Outcome.CANCELLED, None)


async def test_an_unserved_type_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match=r"no executor serves 'other\.v1'"):
        await run_executor(plugin, "other.v1")


DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


async def test_the_documented_example_runs() -> None:
    text = DOCS.read_text("utf-8")
    section = text.split("## Testing executors", 1)[1]
    source = re.search(r"```python\n(.*?)```", section, re.S)
    assert source is not None
    namespace: dict[str, Any] = {}
    exec(compile(source.group(1), "docs/plugins.md", "exec"), namespace)  # noqa: S102
    tests = [v for k, v in namespace.items() if k.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        await test()
