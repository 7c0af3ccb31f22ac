"""The real worker's JSON logs: every line about a run names the run, type, attempt and worker."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.acceptance.cli import cli_env, started
from tests.waiting import eventually

pytestmark = pytest.mark.acceptance

RUNS = [
    # a retry (two attempts), a sync executor in a thread, a payload that fails validation
    ("billing.payment.v1", {"payment_id": "PAY-9", "amount": 5.0, "method": "card"}),
    ("notify.email.v1", {"to": "a@example.com", "subject": "hi", "body": "b"}),
    ("billing.invoice.v1", {"invoice_id": "INV-9"}),
]


async def test_every_run_log_line_carries_the_run_context(pg_dsn: str, schema: str) -> None:
    env = cli_env(
        pg_dsn, schema, WORKFLEET_WORKER_ID="logs-worker-1", WORKFLEET_HTTP_ENABLED="false"
    )
    async with started("worker", "--prefix", "billing.%", "--prefix", "notify.%", env=env) as w:
        await w.wait_for_line("worker started")
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            ids: dict[str, str] = {}
            for run_type, payload in RUNS:
                cur = await conn.execute(
                    "INSERT INTO workflow_run (type, payload) VALUES (%s, %s) RETURNING id",
                    [run_type, json.dumps(payload)],
                )
                row = await cur.fetchone()
                assert row is not None
                ids[str(row[0])] = run_type

            async def all_finished() -> bool:
                cur = await conn.execute(
                    "SELECT count(*) FROM workflow_run WHERE status IN ('succeeded', 'failed')"
                )
                row = await cur.fetchone()
                return row is not None and row[0] == len(RUNS)

            await eventually(all_finished, 30)
        assert await w.terminate() == 0

    lines: list[dict[str, Any]] = []
    for raw in w.output.splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    about_runs = [line for line in lines if any(run_id in json.dumps(line) for run_id in ids)]
    # executor lines (from run.log) and the runtime's own outcome lines
    assert any("Processing payment PAY-9" in line["event"] for line in about_runs)
    assert any("Sending email" in line["event"] for line in about_runs)
    assert len(about_runs) >= 8, about_runs
    for line in about_runs:
        assert line.get("worker_id") == "logs-worker-1", line
        assert line.get("run_id") in ids, line
        assert line.get("type") == ids[line["run_id"]], line
        assert isinstance(line.get("attempt"), int) and line["attempt"] >= 1, line
    payment_attempts = {
        line["attempt"] for line in about_runs if line["type"] == "billing.payment.v1"
    }
    assert payment_attempts == {1, 2}
