"""The console in a real browser: Debian's chromium (``/usr/bin/chromium``, installed by
``.ci/run`` when missing) driven by Playwright's own driver, never a downloaded browser, against
the real ``workfleet api`` process. Screenshots of every view go to ``.artifacts/screenshots``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.api.conftest import ADMIN_KEY
from tests.api.served import Served, serve_api

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".artifacts" / "screenshots"
CHROMIUM = os.environ.get("WORKFLEET_TEST_CHROMIUM") or shutil.which("chromium") or ""
# the flags a headless chromium needs on a closed network, as root, in a container
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def served(pg_dsn: str) -> Iterator[Served]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serve_api(pg_dsn, log=SHOTS.parent / "api-browser.log") as api:
        yield api


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    # a missing browser fails the tests rather than skipping them: .ci/run installs it
    assert CHROMIUM, "no chromium on PATH: apt-get install chromium (as .ci/run does)"
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Seed:
    """Runs made through the API and, for states only a worker reaches, by SQL."""

    def __init__(self, served: Served) -> None:
        self.served = served

    def run(self, run_type: str, payload: Any) -> str:
        response = httpx.post(
            f"{self.served.url}/api/v1/workflows",
            json={"type": run_type, "payload": payload},
            headers={"X-API-Key": ADMIN_KEY},
        )
        assert response.status_code == 201, response.text
        run_id: str = response.json()["id"]
        return run_id

    def sql(self, statement: str, params: Any = None) -> None:
        with psycopg.connect(self.served.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("SET search_path TO {}").format(sql.Identifier(self.served.schema))
            )
            conn.execute(statement.encode(), params)

    def fail(self, run_id: str, error: str) -> None:
        self.sql(
            "UPDATE workflow_run SET status = 'failed', attempt = max_attempts, last_error = %s"
            " WHERE id = %s",
            [error, run_id],
        )
        data = {
            "error": error,
            "traceback": 'Traceback (most recent call last):\n  File "billing.py", line 12, in '
            "charge\nPaymentDeclined: card declined",
        }
        self.sql(
            "INSERT INTO workflow_event (workflow_id, event_type, data) VALUES (%s, 'failed', %s)",
            [run_id, json.dumps(data)],
        )

    def schedule(self, **body: Any) -> None:
        response = httpx.post(
            f"{self.served.url}/api/v1/schedules", json=body, headers={"X-API-Key": ADMIN_KEY}
        )
        assert response.status_code == 201, response.text

    def register(self, *types: str) -> None:
        for run_type in types:
            self.sql(
                "INSERT INTO workflow_registry (workflow_name, runtime) VALUES (%s, 'python')"
                " ON CONFLICT DO NOTHING",
                [run_type],
            )


@pytest.fixture(scope="module")
def seed(served: Served) -> Seed:
    return Seed(served)
