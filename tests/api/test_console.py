"""The console over HTTP (no browser): sign-in, every page, escaping, CSRF, read-only keys, and
the two-step actions. tests/browser drives the same pages in chromium."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.api.conftest import ADMIN, ADMIN_KEY, READ_KEY, create
from workfleet.db.store import PgStore
from workfleet.models import Completion, RegistryEntry
from workfleet.store import ClaimFilter

pytestmark = pytest.mark.postgres


async def _sign_in(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/ui/login", data={"key": key, "next": "/ui/runs"})
    assert response.status_code == 303 and response.headers["location"] == "/ui/runs"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert key not in cookie


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


async def test_pages_need_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/ui/", "/ui/runs", "/ui/failed", "/ui/schedules", "/ui/workers"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login?next=")
    bad = await client.post("/ui/login", data={"key": "nope"})
    assert bad.status_code == 401 and "not valid" in bad.text
    evil = await client.post("/ui/login", data={"key": ADMIN_KEY, "next": "//evil.example/"})
    assert evil.headers["location"] == "/ui/"


async def test_every_page_renders_and_escapes_user_data(
    client: httpx.AsyncClient, pg_store: PgStore
) -> None:
    await pg_store.upsert_registry([RegistryEntry("xss.v1")])
    run_id = await create(
        client, type="xss.v1", payload={"note": "<script>alert(1)</script>", "<b>k</b>": 1}
    )
    await _sign_in(client, ADMIN_KEY)
    for path in (
        "/ui/",
        "/ui/runs",
        "/ui/failed",
        "/ui/schedules",
        "/ui/workers",
        f"/ui/runs/{run_id}",
        "/ui/runs?payload=%7B%22note%22%3A1%7D",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "<script>alert" not in response.text
    detail = (await client.get(f"/ui/runs/{run_id}")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "&lt;b&gt;k&lt;/b&gt;" in detail
    missing = await client.get("/ui/runs/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    bad_filters = await client.get("/ui/runs?status=sleeping&payload=%7Bnope&since=yesterday")
    assert bad_filters.status_code == 200 and bad_filters.text.count('class="flash bad"') == 3


async def test_runs_filter_and_page(client: httpx.AsyncClient) -> None:
    ids = [await create(client, type="page.v1", payload={"n": i}) for i in range(55)]
    other = await create(client, type="other.v1", payload={"n": 3})
    await _sign_in(client, READ_KEY)
    first = (await client.get("/ui/runs?type=page.%25")).text
    assert "55 match" in first and other[:8] not in first
    assert ids[-1][:8] in first and ids[0][:8] not in first
    older = re.search(r'href="(/ui/runs\?[^"]*after=[^"]*)"', first)
    assert older
    second = (await client.get(older.group(1).replace("&amp;", "&"))).text
    assert ids[0][:8] in second and ids[-1][:8] not in second
    found = (await client.get('/ui/runs?payload={"n": 3}')).text
    assert ids[3][:8] in found and other[:8] in found and ids[4][:8] not in found


async def test_cancel_is_two_steps_with_csrf(client: httpx.AsyncClient) -> None:
    run_id = await create(client, type="c.v1")
    await _sign_in(client, ADMIN_KEY)
    detail = (await client.get(f"/ui/runs/{run_id}")).text
    assert f"/ui/runs/{run_id}/cancel" in detail
    confirm = (await client.get(f"/ui/runs/{run_id}/cancel")).text
    assert "Confirm cancel" in confirm
    forged = await client.post(f"/ui/runs/{run_id}/cancel", data={"csrf": "0" * 64})
    assert forged.status_code == 403
    assert "pending" in (await client.get(f"/ui/runs/{run_id}")).text
    done = await client.post(f"/ui/runs/{run_id}/cancel", data={"csrf": _csrf(confirm)})
    assert done.status_code == 303
    after = (await client.get(done.headers["location"])).text
    assert "Run cancelled." in after and "status-cancelled" in after


async def test_a_read_only_key_sees_no_actions_and_cannot_post(
    client: httpx.AsyncClient, pg_store: PgStore
) -> None:
    run_id = await create(client, type="ro.v1")
    [claimed] = await pg_store.claim("w", ClaimFilter(("ro.v1",), ()), 1, 30)
    await pg_store.complete_many("w", [Completion.failed(claimed.lease, "x", {})])
    await _sign_in(client, READ_KEY)
    detail = (await client.get(f"/ui/runs/{run_id}")).text
    assert "Redrive…" not in detail and "Cancel run" not in detail
    failed = (await client.get("/ui/failed")).text
    assert "Redrive selected" not in failed and 'type="checkbox"' not in failed
    refused = await client.post(f"/ui/runs/{run_id}/redrive", data={"csrf": _csrf(detail)})
    assert refused.status_code == 403


async def test_bulk_redrive_shows_a_dry_run_then_acts(
    client: httpx.AsyncClient, pg_store: PgStore
) -> None:
    ids = [await create(client, type="bulk.v1") for _ in range(3)]
    claimed = await pg_store.claim("w", ClaimFilter(("bulk.v1",), ()), 3, 30)
    await pg_store.complete_many("w", [Completion.failed(c.lease, "down", {}) for c in claimed])
    await _sign_in(client, ADMIN_KEY)
    page = (await client.get("/ui/failed")).text
    token = _csrf(page)
    dry = await client.post(
        "/ui/bulk/redrive?type=bulk.v1", data={"csrf": token, "scope": "filter"}
    )
    assert "Redrive 3 failed run(s)?" in dry.text
    assert {r.status for r in [await pg_store.get(c.id) for c in claimed] if r} == {"failed"}
    done = await client.post(
        "/ui/bulk/redrive?type=bulk.v1", data={"csrf": token, "scope": "filter", "confirm": "yes"}
    )
    assert done.status_code == 303 and "Redrove%203" in done.headers["location"]
    assert {r.status for r in [await pg_store.get(c.id) for c in claimed] if r} == {"pending"}
    assert len(ids) == 3


async def test_pause_and_resume_a_schedule(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/v1/schedules", json={"type": "s.v1", "schedule": "@hourly"}, headers=ADMIN
    )
    sid = created.json()["id"]
    await _sign_in(client, ADMIN_KEY)
    page = (await client.get("/ui/schedules")).text
    assert f"/ui/schedules/{sid}/pause" in page
    done = await client.post(f"/ui/schedules/{sid}/pause", data={"csrf": _csrf(page)})
    assert done.status_code == 303
    after = (await client.get(done.headers["location"])).text
    assert "Schedule paused." in after and f"/ui/schedules/{sid}/resume" in after
    stale = await client.post(f"/ui/schedules/{sid}/resume", data={"csrf": "stale"})
    assert stale.status_code == 403
