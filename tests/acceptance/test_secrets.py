"""Payload contents and DSN passwords never reach logs, metrics, errors or `status` output."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import psycopg
import pytest
from psycopg import sql

from tests.acceptance.cli import cli_env, run_cli, started
from tests.waiting import eventually

pytestmark = pytest.mark.acceptance

PASSWORD = "Pw-0f-the-D4tabase"
PAYLOAD_SECRET = "card-4111-1111-1111-1111"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own loopback
        body: bytes = response.read()
    return body.decode()


async def test_no_secrets_in_logs_metrics_or_status(pg_dsn: str, schema: str) -> None:
    # trust authentication accepts any password, so it can ride along in the URL
    dsn = psycopg.conninfo.make_conninfo(pg_dsn, password=PASSWORD)
    env = cli_env(dsn, schema, WORKFLEET_HTTP_HOST="127.0.0.1")
    async with started(
        "worker", "--prefix", "billing.%", "--prefix", "notify.%", env=env
    ) as worker:
        line = await worker.wait_for_line("worker started")
        metrics_url = json.loads(line)["metrics"]
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            for run_type, payload in (
                # fails validation: the error names fields, not values
                ("billing.invoice.v1", {"invoice_id": PAYLOAD_SECRET, "amount": PAYLOAD_SECRET}),
                (
                    "billing.invoice.v1",
                    {"invoice_id": "x", "amount": 1, "customer_id": "c", "note": PAYLOAD_SECRET},
                ),
                ("notify.fax.v1", {"to": PAYLOAD_SECRET}),
            ):
                await conn.execute(
                    "INSERT INTO workflow_run (type, payload) VALUES (%s, %s)",
                    [run_type, json.dumps(payload)],
                )

            async def finished() -> bool:
                cur = await conn.execute(
                    "SELECT count(*) FROM workflow_run WHERE status IN ('failed', 'succeeded')"
                )
                row = await cur.fetchone()
                return row is not None and row[0] == 3

            await eventually(finished, 20)
            cur = await conn.execute(
                "SELECT last_error FROM workflow_run WHERE last_error IS NOT NULL"
            )
            errors = [r[0] for r in await cur.fetchall()]
        metrics = await asyncio.to_thread(_get, metrics_url)
        _, status_out, status_err = await run_cli("status", env=env)
        _, check_out, check_err = await run_cli("check", env=env)
        assert await worker.terminate() == 0

    assert any("amount" in e for e in errors), errors
    assert "password=***" in check_out, "the URL is shown, redacted"
    everything = "\n".join(
        [worker.output, metrics, status_out, status_err, check_out, check_err, *errors]
    )
    assert PAYLOAD_SECRET not in everything
    assert PASSWORD not in everything
