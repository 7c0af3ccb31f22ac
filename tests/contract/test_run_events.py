"""``WORKFLEET_RUN_EVENTS=failures``: the hot path's events are left out, nothing else is."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.harness import W, claim_one, enqueue, fail, kinds, record, retry, succeed
from workfleet.models import RunStatus
from workfleet.store import RunQueue


@pytest.fixture
def quiet(store: RunQueue) -> RunQueue:
    # both stores take the switch as a constructor argument; the fixtures build default ones
    target: Any = store
    target.lifecycle_events = False
    return store


async def test_success_writes_no_lifecycle_events(quiet: RunQueue) -> None:
    run_id = await enqueue(quiet)
    await claim_one(quiet)
    assert await quiet.complete_many(W, [succeed(run_id)]) == {run_id}
    assert (await record(quiet, run_id)).status is RunStatus.SUCCEEDED
    assert await kinds(quiet, run_id) == ["created"]


async def test_retries_and_failures_are_still_recorded(quiet: RunQueue) -> None:
    run_id = await enqueue(quiet)
    await claim_one(quiet)
    assert await quiet.complete_many(W, [retry(run_id, delay=0)]) == {run_id}
    await claim_one(quiet)
    assert await quiet.complete_many(W, [fail(run_id, attempt=1)]) == {run_id}
    assert (await record(quiet, run_id)).status is RunStatus.FAILED
    assert await kinds(quiet, run_id) == ["created", "retried", "failed"]
    assert (await quiet.events(run_id))[1].data["error"] == "RuntimeError: boom"


async def test_cancellation_is_still_recorded(quiet: RunQueue) -> None:
    run_id = await enqueue(quiet)
    await claim_one(quiet)
    assert await quiet.cancel(run_id)
    assert await kinds(quiet, run_id) == ["created", "cancelled"]
