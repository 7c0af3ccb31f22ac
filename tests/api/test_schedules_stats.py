"""/schedules and /stats against real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import ADMIN, READ, create
from workfleet.db.store import PgStore
from workfleet.models import Completion, RegistryEntry
from workfleet.store import ClaimFilter

pytestmark = pytest.mark.postgres


async def test_schedule_lifecycle(client: httpx.AsyncClient, run_sql: Any) -> None:
    body = {"type": "report.daily", "schedule": "@daily", "payload": {"r": 1}}
    created = await client.post("/api/v1/schedules", json=body, headers=ADMIN)
    assert created.status_code == 201
    sid = created.json()["id"]
    one = (await client.get(f"/api/v1/schedules/{sid}", headers=READ)).json()
    assert (one["schedule"], one["enabled"], one["payload"]) == ("0 0 * * *", True, {"r": 1})
    listed = (await client.get("/api/v1/schedules", headers=READ)).json()["schedules"]
    assert [s["id"] for s in listed] == [sid]
    paused = await client.post(f"/api/v1/schedules/{sid}/pause", headers=ADMIN)
    assert paused.json()["enabled"] is False
    resumed = await client.post(f"/api/v1/schedules/{sid}/resume", headers=ADMIN)
    assert resumed.json()["enabled"] is True
    # another tool wrote a cron workfleet cannot fire: listed with its problem, not resumable
    await run_sql("UPDATE workflow_schedule SET schedule = 'every tuesday' WHERE id = %s", [sid])
    refused = await client.post(f"/api/v1/schedules/{sid}/resume", headers=ADMIN)
    assert refused.status_code == 409
    assert (await client.delete(f"/api/v1/schedules/{sid}", headers=ADMIN)).status_code == 204
    assert (await client.get(f"/api/v1/schedules/{sid}", headers=READ)).status_code == 404
    for path in (f"/api/v1/schedules/{uuid.uuid4()}", "/api/v1/schedules/x"):
        assert (await client.get(path, headers=READ)).status_code == 404
        assert (await client.post(path + "/pause", headers=ADMIN)).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"type": "t", "schedule": "61 * * * *"},
        {"type": "t", "schedule": "@daily", "timezone": "Mars/Olympus"},
        {"type": "t", "schedule": "@daily\u0000"},
        {"type": "", "schedule": "@daily"},
    ],
)
async def test_bad_schedules_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/api/v1/schedules", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text


async def test_stats_per_prefix(client: httpx.AsyncClient, pg_store: PgStore, run_sql: Any) -> None:
    await pg_store.upsert_registry([RegistryEntry("billing.invoice.v1"), RegistryEntry("media.x")])
    for _ in range(3):
        await create(client, type="billing.invoice.v1")
    await create(client, type="billing.invoice.v1", run_after="2099-01-01T00:00:00Z")
    await create(client, type="media.x")
    await run_sql(
        "UPDATE workflow_run SET run_at = now() - interval '60 seconds' WHERE type = 'media.x'"
    )
    [claimed] = await pg_store.claim("w", ClaimFilter(("billing.invoice.v1",), ()), 1, 30)
    await pg_store.complete_many("w", [Completion.failed(claimed.lease, "x", {})])
    report = (await client.get("/api/v1/stats", headers=READ)).json()
    by_prefix = {s["prefix"]: s for s in report["prefixes"]}
    assert set(by_prefix) == {"billing.%", "media.%"}
    billing = by_prefix["billing.%"]
    assert (billing["pending"], billing["due"], billing["leased"]) == (3, 2, 0)
    assert billing["failed_recent"] == 1 and billing["succeeded_recent"] == 0
    assert by_prefix["media.%"]["oldest_pending_age_seconds"] >= 59
    one = (await client.get("/api/v1/stats", params={"prefix": "media.%"}, headers=READ)).json()
    assert [s["prefix"] for s in one["prefixes"]] == ["media.%"]
    assert report["cap"] == 10_000
