"""The hot claim query reads a partial index, not the table, when finished rows pile up."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from workfleet.db.queries import Queries

PENDING_ONLY_INDEXES = {
    "workfleet_run_ready_idx",
    "workfleet_run_waiting_idx",
    "idx_workflow_run_claim",
    "idx_workflow_run_type_prefix",
}


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


async def test_claim_uses_partial_index_with_many_finished_rows(pg_dsn: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        table = sql.SQL("{}.workflow_run").format(sql.Identifier(schema))
        # 60k finished rows (the bulk of any real table) and a handful of pending ones
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (type, payload, status, created_at) "
                "SELECT (ARRAY['billing.invoice.v1', 'media.video.v1', 'notify.email.v1'])"
                "[g % 3 + 1],"
                " jsonb_build_object('n', g), 'succeeded', now() - interval '1 day' "
                "FROM generate_series(1, 60000) g"
            ).format(table)
        )
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (type, payload) SELECT 'billing.invoice.v1', "
                "jsonb_build_object('n', g) FROM generate_series(1, 20) g"
            ).format(table)
        )
        await conn.execute(sql.SQL("ANALYZE {}").format(table))
        query = Queries(schema)["claim"]
        cur = await conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) ") + query,
            {
                "exact": [],
                "likes": ["billing.%"],
                "limit": 10,
                "worker_id": "w",
                "lease": 30.0,
                "lifecycle": True,
            },
        )
        row = await cur.fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    nodes = _nodes(plan[0]["Plan"])
    run_scans = [n for n in nodes if n.get("Relation Name") == "workflow_run"]
    assert run_scans, "the plan reads workflow_run"
    assert not [n for n in run_scans if n["Node Type"] == "Seq Scan"], run_scans
    used = {n.get("Index Name") for n in run_scans}
    assert used & PENDING_ONLY_INDEXES, f"claim used {used}"


async def test_array_driven_batches_are_planned_for_their_actual_size(
    pg_dsn: str, schema: str
) -> None:
    """A prepared statement's generic plan guesses 10 input rows and went quadratic on big
    outcome batches (30 ms -> 270 ms for 1,000): those statements are never prepared, while the
    claim (a LIMIT, no arrays) is, from its fifth run on."""
    from psycopg_pool import AsyncConnectionPool

    from tests.contract.harness import ALL, W, succeed
    from workfleet.db.store import PgStore
    from workfleet.models import NewRun

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        pg_dsn, min_size=1, max_size=1, open=False, kwargs={"autocommit": True}
    )
    await pool.open(wait=True)
    try:
        store = PgStore(pool, schema)
        await store.enqueue_many([NewRun("plan.t.v1", {}) for _ in range(8)])
        for _ in range(8):
            [claimed] = await store.claim(W, ALL, 1, 30)
            assert await store.complete_many(W, [succeed(claimed.id)]) == {claimed.id}
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [str(r[0]) for r in await cur.fetchall()]
    finally:
        await pool.close()
    assert any("SKIP LOCKED" in text for text in prepared), prepared
    assert not any("jsonb_to_recordset" in text for text in prepared), prepared
