"""Bulk cancel and redrive by ids or by filter: bounded, reported id by id, with a dry run."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import ADMIN, create
from workfleet.db.store import PgStore
from workfleet.models import Completion
from workfleet.store import ClaimFilter

pytestmark = pytest.mark.postgres


async def _status(client: httpx.AsyncClient, run_id: str) -> str:
    response = await client.get(f"/api/v1/workflows/{run_id}", headers=ADMIN)
    status: str = response.json()["status"]
    return status


async def _bulk(client: httpx.AsyncClient, action: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/bulk/{action}", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def test_cancel_by_ids_reports_done_and_skipped(client: httpx.AsyncClient) -> None:
    a = await create(client, type="b.v1")
    b = await create(client, type="b.v1")
    finished = await create(client, type="b.v1")
    await client.delete(f"/api/v1/workflows/{finished}", headers=ADMIN)
    missing = str(uuid.uuid4())
    report = await _bulk(client, "cancel", ids=[a, b, finished, missing, a])
    assert sorted(report["done"]) == sorted([a, b])
    assert sorted(report["skipped"]) == sorted([finished, missing])
    assert report["truncated"] is False and report["dry_run"] is False
    assert {await _status(client, a), await _status(client, b)} == {"cancelled"}


async def test_dry_run_changes_nothing(client: httpx.AsyncClient) -> None:
    ids = [await create(client, type="dry.v1") for _ in range(3)]
    report = await _bulk(client, "cancel", filter={"types": ["dry.%"]}, dry_run=True)
    assert sorted(report["selected"]) == sorted(ids) and report["done"] == []
    assert {await _status(client, i) for i in ids} == {"pending"}


async def test_a_filter_is_bounded_newest_first(client: httpx.AsyncClient) -> None:
    ids = [await create(client, type="many.v1", payload={"batch": 7}) for _ in range(5)]
    await create(client, type="many.v1", payload={"batch": 8})
    report = await _bulk(client, "cancel", filter={"payload": {"batch": 7}}, limit=3)
    assert report["truncated"] is True
    assert report["done"] == list(reversed(ids))[:3]
    rest = await _bulk(client, "cancel", filter={"payload": {"batch": 7}}, limit=3)
    assert rest["truncated"] is False and rest["done"] == list(reversed(ids))[3:]


async def test_bulk_redrive_of_failed_runs(client: httpx.AsyncClient, pg_store: PgStore) -> None:
    ids = [await create(client, type="flaky.v1") for _ in range(3)]
    claimed = await pg_store.claim("w", ClaimFilter(("flaky.v1",), ()), 2, 30)
    await pg_store.complete_many("w", [Completion.failed(c.lease, "boom", {}) for c in claimed])
    failed = {str(c.id) for c in claimed}
    report = await _bulk(client, "redrive", filter={"types": ["flaky.v1"], "error": "BOOM"})
    assert set(report["done"]) == failed
    pending = [i for i in ids if i not in failed]
    assert {await _status(client, i) for i in ids} == {"pending"}
    by_id = await _bulk(client, "redrive", ids=pending)
    assert by_id["done"] == [] and by_id["skipped"] == pending, "not failed: not redriven"
    events = await client.get(f"/api/v1/workflows/{next(iter(failed))}/events", headers=ADMIN)
    assert events.json()["events"][-1]["data"]["reason"] == "redrive"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": [], "filter": {}},
        {"ids": ["nope"]},
        {"filter": {"statuses": ["sleeping"]}},
        {"filter": {"types": [""]}},
        {"filter": {"payload": {"a": "\u0000"}}},
        {"filter": {}, "limit": 1001},
        {"ids": [str(uuid.uuid4()) for _ in range(1001)]},
    ],
)
async def test_bad_bulk_requests_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/api/v1/bulk/cancel", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
