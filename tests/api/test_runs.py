"""/api/v1/workflows against real PostgreSQL: simple-workflow's routes with correct 404 and
409, keyset and offset pages, filters, cancel and redrive."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import ADMIN, READ, create
from workfleet.db.store import PgStore
from workfleet.models import Completion
from workfleet.store import ClaimFilter

pytestmark = pytest.mark.postgres


async def test_create_answers_201_with_the_id_and_stores_the_body(
    client: httpx.AsyncClient, pg_store: PgStore
) -> None:
    body = {
        "type": "billing.invoice.v1",
        "payload": {"invoice_id": "INV-001", "amount": 1500},
        "priority": 5,
        "idempotency_key": "invoice-INV-001",
        "max_attempts": 5,
        "run_after": "2030-01-01T00:00:00Z",
    }
    response = await client.post("/api/v1/workflows", json=body, headers=ADMIN)
    assert response.status_code == 201
    run_id = uuid.UUID(response.json()["id"])
    assert response.headers["location"] == f"/api/v1/workflows/{run_id}"
    record = await pg_store.get(run_id)
    assert record is not None
    assert (record.type, record.payload, record.priority) == (body["type"], body["payload"], 5)
    assert (record.idempotency_key, record.max_attempts) == ("invoice-INV-001", 5)
    assert record.run_at.year == 2030 and record.status == "pending"


async def test_a_duplicate_key_is_409_naming_the_existing_run(client: httpx.AsyncClient) -> None:
    first = await create(client, type="t.v1", idempotency_key="k-1")
    again = await client.post(
        "/api/v1/workflows", json={"type": "t.v1", "idempotency_key": "k-1"}, headers=ADMIN
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["id"] == first
    assert again.json()["field"] == "body.idempotency_key"


async def test_get_one_and_404s(client: httpx.AsyncClient) -> None:
    run_id = await create(client, type="t.v1", payload={"a": [1, 2]})
    got = await client.get(f"/api/v1/workflows/{run_id}", headers=READ)
    assert got.status_code == 200
    assert got.json()["payload"] == {"a": [1, 2]} and got.json()["status"] == "pending"
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        for path in (f"/api/v1/workflows/{missing}", f"/api/v1/workflows/{missing}/events"):
            answer = await client.get(path, headers=READ)
            assert answer.status_code == 404, path
            assert answer.json()["status"] == 404


async def test_events_are_the_audit_trail(client: httpx.AsyncClient) -> None:
    run_id = await create(client, type="t.v1")
    assert (await client.delete(f"/api/v1/workflows/{run_id}", headers=ADMIN)).status_code == 200
    events = (await client.get(f"/api/v1/workflows/{run_id}/events", headers=READ)).json()
    kinds = [e["event_type"] for e in events["events"]]
    assert kinds == ["created", "cancelled"]
    assert all(e["workflow_id"] == run_id for e in events["events"])


async def test_cancel_then_cancel_again_is_409(client: httpx.AsyncClient) -> None:
    run_id = await create(client, type="t.v1")
    done = await client.delete(f"/api/v1/workflows/{run_id}", headers=ADMIN)
    assert done.json() == {"id": run_id, "status": "cancelled"}
    again = await client.delete(f"/api/v1/workflows/{run_id}", headers=ADMIN)
    assert again.status_code == 409 and again.json()["run_status"] == "cancelled"
    gone = await client.delete(f"/api/v1/workflows/{uuid.uuid4()}", headers=ADMIN)
    assert gone.status_code == 404


async def test_redrive_a_failed_run(client: httpx.AsyncClient, pg_store: PgStore) -> None:
    run_id = await create(client, type="fail.v1")
    not_failed = await client.post(f"/api/v1/workflows/{run_id}/redrive", headers=ADMIN)
    assert not_failed.status_code == 409 and not_failed.json()["reason"] == "not_redrivable"
    [claimed] = await pg_store.claim("w", ClaimFilter(("fail.v1",), ()), 1, 30)
    await pg_store.complete_many("w", [Completion.failed(claimed.lease, "boom", {})])
    done = await client.post(f"/api/v1/workflows/{run_id}/redrive", headers=ADMIN)
    assert done.json() == {"id": run_id, "status": "pending"}
    record = await pg_store.get(uuid.UUID(run_id))
    assert record is not None and record.attempt == 0


async def _ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/api/v1/workflows", params=params, headers=READ)
    assert response.status_code == 200, response.text
    return [w["id"] for w in response.json()["workflows"]]


async def test_list_filters(client: httpx.AsyncClient, run_sql: Any) -> None:
    a = await create(client, type="billing.invoice.v1", payload={"customer": "c1", "n": 1})
    b = await create(client, type="billing.refund.v1", payload={"customer": "c2"})
    c = await create(client, type="media.video.v1", payload={"customer": "c1"}, idempotency_key="m")
    await run_sql(
        "UPDATE workflow_run SET created_at = now() - interval '1 hour' WHERE id = %s", [a]
    )
    await client.delete(f"/api/v1/workflows/{b}", headers=ADMIN)

    assert await _ids(client) == [c, b, a]
    assert await _ids(client, type="billing.invoice.v1") == [a]
    assert await _ids(client, type="billing.%") == [b, a]
    assert await _ids(client, prefix="billing.") == [b, a]
    assert await _ids(client, status="cancelled") == [b]
    assert await _ids(client, status=["cancelled", "pending"], prefix="media") == [c]
    assert await _ids(client, payload='{"customer": "c1"}') == [c, a]
    assert await _ids(client, idempotency_key="m") == [c]
    assert await _ids(client, idempotency_key="m", type="billing.%") == []
    assert await _ids(client, idempotency_key="nope") == []
    recent = (await client.get("/api/v1/workflows", params={"limit": 1}, headers=READ)).json()
    since = recent["workflows"][0]["created_at"]
    assert await _ids(client, created_before=since) == [b, a]
    assert await _ids(client, created_after=since) == [c], "created_after is inclusive"


async def test_offset_and_cursor_pages(client: httpx.AsyncClient) -> None:
    made = [await create(client, type="p.v1") for _ in range(5)]
    newest_first = list(reversed(made))
    assert await _ids(client, limit=2, offset=0) == newest_first[:2]
    assert await _ids(client, limit=2, offset=2) == newest_first[2:4]
    assert await _ids(client, limit=2, offset=4) == newest_first[4:]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/workflows", params=params, headers=READ)).json()
        seen += [w["id"] for w in page["workflows"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), "travels in a URL unescaped"
    assert seen == newest_first


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"offset": 10_001},
        {"cursor": "garbage!"},
        {"offset": 0, "cursor": "x"},
        {"status": "sleeping"},
        {"payload": "{not json"},
        {"type": "   "},
        {"created_after": "yesterday"},
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/workflows", params=params, headers=READ)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"].startswith("query.")
