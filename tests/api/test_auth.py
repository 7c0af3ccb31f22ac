"""API keys: hashed in configuration, read and admin scopes, /health outside auth, and no key,
payload or DSN in the logs."""

from __future__ import annotations

import httpx
import pytest
import structlog

from tests.api.conftest import ADMIN, ADMIN_KEY, READ, READ_KEY, create
from workfleet.api.auth import Keys, Principal, digest
from workfleet.settings import ApiKey, ApiSettings

pytestmark = pytest.mark.postgres


async def test_no_or_a_wrong_key_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ADMIN_KEY + "x"}):
        response = await client.get("/api/v1/workflows", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "ApiKey"
        assert ADMIN_KEY not in response.text


async def test_bearer_works_like_the_header(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/workflows", headers={"Authorization": f"Bearer {READ_KEY}"}
    )
    assert response.status_code == 200


async def test_a_read_key_reads_but_cannot_act(client: httpx.AsyncClient) -> None:
    run_id = await create(client, type="t.v1")
    assert (await client.get(f"/api/v1/workflows/{run_id}", headers=READ)).status_code == 200
    for method, path, body in [
        ("POST", "/api/v1/workflows", {"type": "t.v1"}),
        ("DELETE", f"/api/v1/workflows/{run_id}", None),
        ("POST", f"/api/v1/workflows/{run_id}/redrive", None),
        ("POST", "/api/v1/bulk/cancel", {"ids": [run_id]}),
        ("POST", "/api/v1/bulk/redrive", {"ids": [run_id]}),
        ("POST", "/api/v1/schedules", {"type": "t.v1", "schedule": "@daily"}),
    ]:
        response = await client.request(method, path, json=body, headers=READ)
        assert response.status_code == 403, (method, path)
        assert "read-only" in response.json()["detail"]
    got = await client.get(f"/api/v1/workflows/{run_id}", headers=ADMIN)
    assert got.json()["status"] == "pending", "nothing was cancelled"


async def test_health_and_openapi_need_no_key(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/v1/health"):
        response = await client.get(path)
        assert response.json() == {"status": "ok", "database": True}
    assert (await client.get("/livez")).status_code == 200
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/workflows" in spec["paths"]


async def test_logs_name_the_key_never_the_key_or_payload(client: httpx.AsyncClient) -> None:
    secret_payload = {"card": "4242-4242-4242-4242"}
    with structlog.testing.capture_logs() as logs:
        await client.post(
            "/api/v1/workflows",
            json={"type": "t.v1", "payload": secret_payload},
            headers=ADMIN,
        )
        await client.get(
            "/api/v1/workflows", params={"payload": '{"card": "4242-4242-4242-4242"}'}, headers=READ
        )
    text = repr(logs)
    assert "4242" not in text and ADMIN_KEY not in text and READ_KEY not in text
    lines = [entry for entry in logs if entry["event"] == "api.request"]
    assert [entry["key"] for entry in lines] == ["ops", "viewer"]
    assert lines[1]["route"] == "/api/v1/workflows"


def test_keys_compare_hashes_and_sessions_are_signed() -> None:
    settings = ApiSettings(keys=[ApiKey(name="a", scope="admin", sha256=digest("k"))])
    keys = Keys(settings)
    assert keys.check("k") == Principal("a", "admin")
    assert keys.check("K") is None
    cookie = keys.session_cookie(Principal("a", "admin"), now=1000.0)
    assert keys.session(cookie, now=1001.0) == Principal("a", "admin")
    assert keys.session(cookie, now=1000.0 + 13 * 3600) is None, "expired"
    forged = cookie.replace("|admin|", "|read|")
    assert keys.session(forged, now=1001.0) is None
    other = Keys(ApiSettings(keys=[ApiKey(name="a", scope="admin", sha256=digest("other"))]))
    assert other.session(cookie, now=1001.0) is None, "a changed key ends its sessions"
    assert keys.check_csrf(cookie, keys.csrf_token(cookie))
    assert not keys.check_csrf(cookie, keys.csrf_token(cookie + "x"))
