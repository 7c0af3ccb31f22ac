"""The console in chromium: load the overview, filter runs, open one, cancel it and see it
cancelled, bulk-redrive failed runs, a ``<script>`` payload stays text, and the pages read with
JavaScript off. Each view is saved as a screenshot under .artifacts/screenshots."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ADMIN_KEY, READ_KEY
from tests.api.served import Served
from tests.browser.conftest import SHOTS, Seed

pytestmark = [pytest.mark.postgres, pytest.mark.acceptance]


async def _page(browser: Any, served: Served, key: str = ADMIN_KEY, **options: Any) -> Any:
    context = await browser.new_context(
        base_url=served.url, viewport={"width": 1280, "height": 800}, **options
    )
    page = await context.new_page()
    await page.goto("/ui/")
    await page.fill("#key", key)
    await page.click("button[type=submit]")
    await page.wait_for_selector("h1:has-text('Overview')")
    return page


async def _shot(page: Any, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_overview_shows_each_prefix(browser: Any, served: Served, seed: Seed) -> None:
    seed.register("shop.order.v1", "shop.refund.v1", "mail.send.v1")
    for i in range(4):
        seed.run("shop.order.v1", {"order": f"O-{i}", "customer": "c1" if i % 2 else "c2"})
    seed.run("mail.send.v1", {"to": "ops@example.com"})
    failed = seed.run("shop.refund.v1", {"order": "O-9"})
    seed.fail(failed, "PaymentDeclined: card declined")
    page = await _page(browser, served)
    await page.reload()
    cards = page.locator("section.card")
    assert {await c.locator("h3").inner_text() for c in await cards.all()} >= {"shop.%", "mail.%"}
    shop = page.locator("section.card", has_text="shop.%")
    assert "4" in await shop.locator("dd").first.inner_text()
    await _shot(page, "overview")


async def test_filter_runs_then_open_and_cancel_one(
    browser: Any, served: Served, seed: Seed
) -> None:
    ids = [seed.run("filter.item.v1", {"customer": f"k{i}", "n": i}) for i in range(3)]
    seed.run("filter.other.v1", {"customer": "k1"})
    page = await _page(browser, served)
    await page.click("nav >> text=Runs")
    await page.wait_for_selector("h1:has-text('Runs')")
    await page.fill("input[name=type]", "filter.item.%")
    await page.fill("input[name=payload]", '{"customer": "k1"}')
    await page.click("button:has-text('Filter')")
    await page.wait_for_selector("h1:has-text('(1 match)')")
    rows = page.locator("tbody tr")
    assert await rows.count() == 1
    assert ids[1][:8] in await rows.first.inner_text()
    await _shot(page, "runs-filtered")

    await rows.first.locator("a").click()
    await page.wait_for_selector("pre#payload")
    assert '"customer": "k1"' in await page.inner_text("pre#payload")
    await _shot(page, "run-detail")

    await page.click("text=Cancel run…")
    await page.wait_for_selector("button:has-text('Confirm cancel')")
    await page.click("button:has-text('Confirm cancel')")
    await page.wait_for_selector("text=Run cancelled.")
    assert await page.inner_text("h1 .status") == "cancelled"
    assert "cancelled" in await page.inner_text("ol.timeline")
    await _shot(page, "run-cancelled")


async def test_bulk_redrive_of_failed_runs(browser: Any, served: Served, seed: Seed) -> None:
    failed = [seed.run("bulk.charge.v1", {"invoice": f"I-{i}"}) for i in range(3)]
    for run_id in failed:
        seed.fail(run_id, "GatewayTimeout: upstream took 30s")
    page = await _page(browser, served)
    await page.goto("/ui/failed?type=bulk.charge.v1")
    await page.wait_for_selector("h1:has-text('Failed runs (3)')")
    await _shot(page, "failed")
    for run_id in failed[:2]:
        await page.check(f"input[value='{run_id}']")
    await page.click("button:has-text('Redrive selected')")
    await page.wait_for_selector("h1:has-text('Redrive 2 failed run(s)?')")
    await page.click("button:has-text('Confirm redrive')")
    await page.wait_for_selector("text=Redrove 2 failed run(s).")
    await _shot(page, "failed-after-redrive")
    remaining = page.locator("tbody tr")
    assert await remaining.count() == 1
    assert failed[2][:8] in await remaining.first.inner_text()


async def test_a_script_payload_is_inert_text(browser: Any, served: Served, seed: Seed) -> None:
    hostile = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned = 2'>"
    run_id = seed.run("xss.probe.v1", {"note": hostile})
    seed.fail(run_id, "<script>window.__pwned = 3</script>")
    page = await _page(browser, served)
    await page.goto(f"/ui/runs/{run_id}")
    await page.wait_for_selector("pre#payload")
    assert hostile in await page.inner_text("pre#payload")
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("img[src=x]").count() == 0
    await page.goto("/ui/failed?type=xss.probe.v1")
    assert await page.evaluate("window.__pwned") is None
    await _shot(page, "xss-inert")


async def test_read_only_and_javascript_off(browser: Any, served: Served, seed: Seed) -> None:
    run_id = seed.run("nojs.v1", {"a": 1})
    held = seed.run("video.encode.v1", {"video": "v-1"})
    seed.sql(
        "INSERT INTO workfleet_worker (worker_id, hostname, pid, version, patterns)"
        " VALUES ('media-7f9c-1', 'media-7f9c', 1, '0.1.0', ARRAY['video.%'])"
    )
    seed.sql(
        "UPDATE workflow_run SET status = 'leased', leased_by = 'media-7f9c-1',"
        " lease_until = now() + interval '30 seconds' WHERE id = %s",
        [held],
    )
    seed.schedule(type="report.daily.v1", schedule="0 9 * * *", timezone="Europe/Paris")
    seed.schedule(type="cleanup.v1", schedule="*/15 * * * *")
    page = await _page(browser, served, key=READ_KEY, java_script_enabled=False)
    await page.goto(f"/ui/runs/{run_id}")
    assert '"a": 1' in await page.inner_text("pre#payload")
    assert await page.locator("text=Cancel run…").count() == 0, "read-only: no action buttons"
    await page.goto("/ui/runs?type=nojs.v1")
    assert run_id[:8] in await page.inner_text("tbody")
    await page.goto("/ui/schedules")
    assert "report.daily.v1" in await page.inner_text("tbody")
    assert await page.locator("button:has-text('Pause')").count() == 0, "read-only"
    await _shot(page, "schedules")
    await page.goto("/ui/workers")
    assert held[:8] in await page.inner_text("main")
    await _shot(page, "workers")
