"""A durable workflow in the console, in chromium: the step waterfall, what it waits for, its
children and mailbox; sending it a signal and resuming it after a failed step. Screenshots go
to .artifacts/screenshots (workflow-waiting.png, workflow-steps.png)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.api.conftest import READ_KEY
from tests.api.served import Served
from tests.browser.conftest import SHOTS, Seed
from tests.browser.test_console import _page, _shot
from tests.integration.worker_harness import running_worker
from workfleet import Plugin, Run
from workfleet.workflow import RetryPolicy, Workflow

pytestmark = [pytest.mark.postgres, pytest.mark.acceptance]

plugin = Plugin("console-flows")
packs: Counter[str] = Counter()


@plugin.executor("console.label.v1")
async def label(run: Run[Any]) -> str:
    return "label printed"


async def _charge(order: str) -> dict[str, str]:
    return {"charge": f"ch_{order}"}


async def _pack(run_id: str) -> str:
    packs[run_id] += 1
    if packs[run_id] == 1:
        raise ConnectionError("the packing line is down")
    return "packed"


@plugin.workflow("console.order.v1")
async def order(wf: Workflow[Any]) -> Any:
    charge = await wf.step("charge", _charge, wf.payload["order"])
    printed = await wf.child("console.label.v1", {"order": wf.payload["order"]})
    ready = await wf.wait_signal("warehouse.ready")
    packed = await wf.step("pack", _pack, str(wf.id), retry=RetryPolicy(attempts=1))
    return {"charge": charge, "label": printed, "ready": ready, "packed": packed}


async def _until(page: Any, path: str, text: str, tries: int = 60) -> None:
    """Reload ``path`` until ``text`` shows (the worker moves the run between loads)."""
    for _ in range(tries):
        await page.goto(path)
        if text in await page.inner_text("main"):
            return
        await page.wait_for_timeout(250)
    raise AssertionError(f"{text!r} never showed on {path}")


async def test_a_workflow_is_signalled_and_resumed_from_its_page(
    browser: Any, served: Served, seed: Seed
) -> None:
    async with running_worker(served.dsn, served.schema, plugin):
        run_id = seed.run("console.order.v1", {"order": "O-77"})
        page = await _page(browser, served)
        path = f"/ui/runs/{run_id}"
        await _until(page, path, "signal warehouse.ready")
        steps = await page.inner_text("table.waterfall")
        assert "charge" in steps and "signal:warehouse.ready" in steps and "waiting" in steps
        assert "console.label.v1" in await page.inner_text("main")  # its child
        await _shot(page, "workflow-waiting")
        # the top of the page alone (steps, waits, children), as docs/console.md shows it
        await page.screenshot(path=str(SHOTS / "workflow-waiting-top.png"))

        await page.click("text=Send signal…")
        await page.fill("input[name=name]", "warehouse.ready")
        await page.fill("textarea[name=payload]", '{"dock": 3}')
        await page.click("button:has-text('Send signal')")
        await page.wait_for_selector("text=Signal 'warehouse.ready' sent")

        await _until(page, path, "Resume workflow…")  # the pack step failed its one try
        assert "the packing line is down" in await page.inner_text("table.waterfall")
        await page.click("text=Resume workflow…")
        await page.click("button:has-text('Confirm resume')")
        await page.wait_for_selector("text=Workflow resumed")
        await _until(page, path, '"packed": "packed"')
        assert await page.inner_text("h1 .status") == "succeeded"
        assert (await page.locator("table.waterfall tbody tr").count()) >= 5
        await _shot(page, "workflow-steps")

        reader = await _page(browser, served, key=READ_KEY)
        await reader.goto(path)
        assert await reader.locator("text=Send signal…").count() == 0
