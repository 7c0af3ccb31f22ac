"""Metrics that need a database: the pending gauges, plugin load errors, per-run log context."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Plugin, Run, SyncRun
from workfleet.db.maintenance import PgMaintenance
from workfleet.discovery import Discovery, ExecutorRegistry, FoundPlugin, LoadFailure
from workfleet.patterns import TypePattern
from workfleet.runtime.worker import Worker
from workfleet.settings import load_settings

plugin = Plugin("obs")


@plugin.executor("obs.served.v1")
async def served(run: Run[Any]) -> None:
    structlog.get_logger("obs").info("inside async executor")


@plugin.executor("obs.sync.v1")
def served_sync(run: SyncRun[Any]) -> None:
    structlog.get_logger("obs").info("inside sync executor")


INSERT = "INSERT INTO workflow_run (type, payload, run_at, status, deleted_at) VALUES "


async def test_pending_by_prefix_counts_exactly_the_claims_eligibility(
    pg_pool: AsyncConnectionPool[Any], schema: str, run_sql: Any
) -> None:
    await run_sql(
        INSERT + "('pay.a.v1', '{}', now() - interval '90 seconds', 'pending', NULL),"
        "('pay.b.v1', '{}', now() - interval '10 seconds', 'pending', NULL),"
        "('pay.b.v1', '{}', now() + interval '1 hour', 'pending', NULL),"  # not due
        "('pay.c.v1', '{}', now() - interval '1 day', 'pending', now()),"  # deleted
        "('pay.d.v1', '{}', now() - interval '1 day', 'leased', NULL),"  # taken
        "('pay.e.v1', '{}', now() - interval '1 day', 'failed', NULL),"  # finished
        "('payroll.x', '{}', now() - interval '1 day', 'pending', NULL),"  # other prefix
        "('pay_x.v1', '{}', now() - interval '1 day', 'pending', NULL)"  # '_' is not a wildcard
    )
    admin = PgMaintenance(pg_pool, schema)
    stats = await admin.pending_by_prefix(
        [TypePattern.parse("pay.%"), TypePattern.parse("idle.%"), TypePattern.parse("pay.b.v1")]
    )
    by_prefix = {s.prefix: s for s in stats}
    assert by_prefix["pay.%"].pending == 2
    assert 89 <= by_prefix["pay.%"].oldest_age_seconds < 200
    assert by_prefix["pay.b.v1"].pending == 1
    assert 9 <= by_prefix["pay.b.v1"].oldest_age_seconds < 100
    assert (by_prefix["idle.%"].pending, by_prefix["idle.%"].oldest_age_seconds) == (0, 0.0)
    assert await admin.pending_by_prefix([]) == []


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_worker_exports_pending_gauges_and_plugin_failures(
    pg_dsn: str, schema: str, run_sql: Any
) -> None:
    # obs.unserved.v1 matches the loop's prefix but no executor: it stays pending and is counted
    await run_sql(
        "INSERT INTO workflow_run (type, payload, run_at) VALUES "
        "('obs.unserved.v1', '{}', now() - interval '30 seconds'),"
        "('obs.unserved.v1', '{}', now() - interval '5 seconds')"
    )
    registry = CollectorRegistry()
    broken = LoadFailure(FoundPlugin("acme-broken", "acme", "acme.plugin:plugin"), "ImportError")
    discovery = Discovery([], [plugin], ExecutorRegistry.from_plugins([plugin]), [broken])
    settings = load_settings(
        database_url=pg_dsn,
        db_schema=schema,
        http_enabled=False,
        prefixes=["obs.%=2"],
        pending_metrics_interval=0.2,
        log_format="console",
    )
    worker = Worker(settings, discovery, registry=registry)
    assert _value(registry, "workfleet_plugin_load_errors_total", plugin="acme") == 1
    assert _value(registry, "workfleet_listener_enabled") == 1

    task = asyncio.create_task(worker.run())
    try:
        await eventually(
            lambda: _value(registry, "workfleet_runs_pending", prefix="obs.%") == 2, 15
        )
        age = _value(registry, "workfleet_oldest_pending_age_seconds", prefix="obs.%")
        assert age is not None and 29 <= age < 120
        await run_sql("UPDATE workflow_run SET deleted_at = now() WHERE type = 'obs.unserved.v1'")
        await eventually(
            lambda: _value(registry, "workfleet_runs_pending", prefix="obs.%") == 0, 15
        )
        assert _value(registry, "workfleet_oldest_pending_age_seconds", prefix="obs.%") == 0
    finally:
        worker.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


async def test_poll_only_worker_reports_listener_disabled(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, poll_only=True) as running:
        registry = running.worker.registry
        assert _value(registry, "workfleet_listener_enabled") == 0
        assert _value(registry, "workfleet_listener_connected") == 0


async def test_executor_loggers_carry_the_run_context(
    pg_dsn: str, schema: str, run_sql: Any
) -> None:
    """A plain structlog logger inside an executor (async or in a thread) names the run."""
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        async with running_worker(pg_dsn, schema, plugin, worker_id="obs-worker-1") as running:
            rows = await run_sql(
                "INSERT INTO workflow_run (type, payload) VALUES "
                "('obs.served.v1', '{}'), ('obs.sync.v1', '{}') RETURNING id, type"
            )
            await running.observer.wait_for(lambda: running.observer.finished == 2, 15)
    ids = {str(r[0]): r[1] for r in rows}
    inside = [e for e in logs if str(e.get("event", "")).startswith("inside")]
    assert len(inside) == 2, logs
    for entry in inside:
        assert entry["run_id"] in ids
        assert entry["type"] == ids[entry["run_id"]]
        assert entry["attempt"] == 1
        assert entry["worker_id"] == "obs-worker-1"
