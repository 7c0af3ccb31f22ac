"""Workflow storage at scale on real PostgreSQL: waiting rows stay out of the claim's walk,
the waiting gauge counts by kind, a thousand children fan out and in."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tests.integration.test_workflows import _finished, _start
from tests.integration.worker_harness import running_worker
from workfleet import Plugin
from workfleet.db.maintenance import PgMaintenance
from workfleet.db.queries import Queries
from workfleet.patterns import TypePattern
from workfleet.workflow import ChildSpec, Workflow

plugin = Plugin("wfscale")


@plugin.executor("scale.child.v1")
async def child(run: Any) -> int:
    return int(run.payload["i"])


@plugin.workflow("scale.fan.v1")
async def fan(wf: Workflow[Any]) -> dict[str, int]:
    n = int(wf.payload["n"])
    kids = await wf.start_children([ChildSpec("scale.child.v1", {"i": i}) for i in range(n)])
    results = await wf.gather(kids)
    return {"n": len(results), "sum": sum(r.result for r in results if r.ok)}


def _buffers(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


async def test_waiting_rows_stay_out_of_the_claims_walk(pg_dsn: str, schema: str) -> None:
    """200,000 workflows waiting far in the future, created before the ready runs: a claim
    reads a handful of pages, not the waiting rows (20 ms a claim when it walked them)."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        table = sql.SQL("{}.workflow_run").format(sql.Identifier(schema))
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (type, payload, run_at, created_at, wait_kind) "
                "SELECT 'shop.order.v1', '{{}}', now() + interval '1 day', "
                "now() - interval '1 hour', 'signal' FROM generate_series(1, 200000)"
            ).format(table)
        )
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (type, payload) SELECT 'shop.order.v1', '{{}}' "
                "FROM generate_series(1, 50000)"
            ).format(table)
        )
        await conn.execute(sql.SQL("ANALYZE {}").format(table))
        params = {
            "exact": [],
            "likes": ["shop.%"],
            "limit": 10,
            "worker_id": "w",
            "lease": 30.0,
            "lifecycle": True,
        }
        query = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + Queries(schema)["claim"]
        async with conn.transaction(force_rollback=True):
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    assert _buffers(plan) < 600, f"the claim read {_buffers(plan)} pages"


async def test_the_waiting_gauge_counts_by_prefix_and_kind(
    pg_dsn: str, schema: str, pg_pool: Any
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await conn.execute(
            sql.SQL(
                "INSERT INTO {}.workflow_run (type, payload, run_at, wait_kind) "
                "SELECT t, '{{}}', now() + interval '1 hour', k "
                "FROM (VALUES ('shop.a.v1', 'signal'), ('shop.a.v1', 'signal'), "
                "('shop.b.v1', 'sleep'), ('mail.c.v1', 'children')) v(t, k)"
            ).format(sql.Identifier(schema))
        )
    maintenance = PgMaintenance(pg_pool, schema)
    stats = await maintenance.pending_by_prefix([TypePattern.parse("shop.%")])
    [stat] = stats
    assert dict(stat.waiting) == {"signal": 2, "sleep": 1, "children": 0, "retry": 0}
    assert stat.pending == 0  # waiting rows are not runnable


async def test_a_thousand_children_fan_out_and_in(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, concurrency=50) as running:
        run_id = await _start(pg_dsn, schema, "scale.fan.v1", {"n": 1000})
        status, result, error = await _finished(pg_dsn, schema, run_id, timeout=120)
    assert (status, error) == ("succeeded", None)
    assert result == {"n": 1000, "sum": sum(range(1000))}
    assert running.observer.fan_ins == [1000]
    # the parent replays rarely: woken by the last child, not by each
    assert running.observer.suspensions["children"] <= 3, running.observer.suspensions
