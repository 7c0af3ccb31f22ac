"""``workfleet status``: a live view (``--watch``), type filters, colour only on a terminal,
and tables that fit in 120 columns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.acceptance.cli import cli_env, run_cli, started
from workfleet.cli.render import render_run_rows, render_status
from workfleet.models import RunRecord, RunStatus
from workfleet.store import StatusSummary, TypeCount, WorkerRecord

pytestmark = pytest.mark.acceptance


async def test_watch_redraws_until_stopped_and_sees_new_runs(
    pg_dsn: str, schema: str, run_sql: Any
) -> None:
    await run_sql("INSERT INTO workflow_run (type, payload) VALUES ('watch.first.v1', '{}')")
    async with started("status", "--watch", "0.2", env=cli_env(pg_dsn, schema)) as view:
        await view.wait_for_line("watch.first.v1", 20)
        await run_sql("INSERT INTO workflow_run (type, payload) VALUES ('watch.later.v1', '{}')")
        await view.wait_for_line("watch.later.v1", 20)
        assert sum(line.startswith("schema ") for line in view.lines) >= 2, "redrawn"
        assert "\x1b[" not in view.output, "no colour or screen control into a pipe"


async def test_status_filters_by_type(pg_dsn: str, schema: str, run_sql: Any) -> None:
    await run_sql(
        "INSERT INTO workflow_run (type, payload) "
        "VALUES ('billing.a.v1', '{}'), ('media.b.v1', '{}')"
    )
    code, out, err = await run_cli("status", "--type", "billing.%", env=cli_env(pg_dsn, schema))
    assert code == 0, err
    assert "billing.a.v1" in out and "media.b.v1" not in out


def _summary(n_types: int) -> StatusSummary:
    now = datetime.now(UTC)
    long_type = "tenant-with-a-long-name.billing.invoice.reconciliation.monthly.v12"
    counts = [TypeCount(f"{long_type}.{i}", RunStatus.FAILED, 123456) for i in range(n_types)]
    worker = WorkerRecord(
        "pod-billing-worker-7f9c8d6b5-x2x9z-1-abcdef",
        "pod-billing-worker-7f9c8d6b5-x2x9z",
        1,
        "0.1.0",
        ["billing.invoice.v1", "billing.payment.v1", "billing.refund.v1"],
        now,
        now,
    )
    return StatusSummary(counts, [], [worker], [], [], 900.0)


def test_status_and_runs_fit_in_120_columns_and_colour_only_when_asked() -> None:
    plain = render_status(_summary(3), "workflow")
    assert all(len(line) <= 120 for line in plain.splitlines()), plain
    coloured = render_status(_summary(3), "workflow", colour=True)
    assert "\x1b[31m" in coloured and "\x1b[" not in plain
    now = datetime.now(UTC)
    record = RunRecord(
        id=uuid.uuid4(),
        type="x" * 80,
        payload=None,
        status=RunStatus.FAILED,
        priority=100,
        run_at=now,
        idempotency_key=None,
        attempt=3,
        max_attempts=3,
        leased_by=None,
        lease_until=None,
        last_error="E" * 300,
        result=None,
        created_at=now,
        updated_at=now,
        deleted_at=None,
    )
    rows = render_run_rows([record])
    assert all(len(line) <= 120 for line in rows.splitlines()), rows
    assert "\x1b[31m" in render_run_rows([record], colour=True)
