"""Input PostgreSQL rejects is rejected by the fake too, as a StoreError that changes nothing."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tests.contract.harness import ALL, W, claim_one, enqueue, kinds, record, succeed
from workfleet.errors import StoreError
from workfleet.models import RunStatus
from workfleet.store import ClaimFilter, RunQueue


async def test_invalid_result_json_fails_the_whole_batch(store: RunQueue) -> None:
    good = await enqueue(store)
    bad = await enqueue(store)
    await store.claim(W, ALL, 2, 30)
    broken = dataclasses.replace(succeed(bad), result_json="{not json")
    with pytest.raises(StoreError):
        await store.complete_many(W, [succeed(good), broken])
    assert (await record(store, good)).status is RunStatus.LEASED
    assert await kinds(store, good) == ["created", "leased", "started"]


async def test_nan_in_event_data_is_rejected(store: RunQueue) -> None:
    run_id = await enqueue(store)
    await claim_one(store)
    with pytest.raises(StoreError):
        await store.complete_many(
            W, [dataclasses.replace(succeed(run_id), event_data={"x": math.nan})]
        )
    assert (await record(store, run_id)).status is RunStatus.LEASED


async def test_nul_in_text_is_rejected(store: RunQueue) -> None:
    await enqueue(store)
    with pytest.raises(StoreError):
        await store.claim("worker\x00a", ALL, 1, 30)
    with pytest.raises(StoreError):
        await enqueue(store, "t.nul\x00.v1")


async def test_like_pattern_ending_in_an_escape_is_rejected(store: RunQueue) -> None:
    await enqueue(store, "ab.v1")
    with pytest.raises(StoreError):
        await store.claim(W, ClaimFilter((), ("ab\\",)), 1, 30)


async def test_infinite_lease_is_rejected_and_claims_nothing(store: RunQueue) -> None:
    run_id = await enqueue(store)
    with pytest.raises(StoreError):
        await store.claim(W, ALL, 1, math.inf)
    assert (await record(store, run_id)).status is RunStatus.PENDING


async def test_negative_list_limit_is_rejected(store: RunQueue) -> None:
    with pytest.raises(StoreError):
        await store.list_runs(limit=-1)
