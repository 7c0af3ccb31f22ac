"""Status on PostgreSQL: live workers, counts, other pollers, and the types nobody serves."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tests.integration.simple_workflow import poller_claim, poller_fail, poller_succeed
from workfleet.cli.render import json_default as _json_default
from workfleet.cli.render import render_status
from workfleet.db.maintenance import PgMaintenance
from workfleet.db.queries import Queries
from workfleet.db.status import OTHERS_SCAN, PgStatus
from workfleet.db.store import PgStore
from workfleet.models import NewRun
from workfleet.store import ClaimFilter


@pytest.fixture
def status(pg_pool: AsyncConnectionPool[Any], schema: str) -> PgStatus:
    return PgStatus(pg_pool, schema)


@pytest.fixture
def maintenance(pg_pool: AsyncConnectionPool[Any], schema: str) -> PgMaintenance:
    return PgMaintenance(pg_pool, schema)


async def test_workers_and_status(
    status: PgStatus, maintenance: PgMaintenance, pg_store: PgStore, run_sql: Any
) -> None:
    await maintenance.register_worker("w1", "host", 1, "0.1.0", ["billing.%"])
    await maintenance.register_worker("w2", "host", 2, "0.1.0", ["media.video.v1"])
    await run_sql(
        "UPDATE workfleet_worker SET last_seen_at = now() - interval '1 hour' "
        "WHERE worker_id = 'w2'"
    )
    await pg_store.enqueue_many(
        [
            NewRun("billing.invoice.v1", {"secret": "s3cret"}),
            NewRun("media.video.v1"),
            NewRun("media.video.v1"),
            NewRun("later.v1", delay=3600),
        ]
    )
    summary = await status.status_summary(live_within=30)
    assert [w.worker_id for w in summary.workers] == ["w1"]
    counts = {(c.type, str(c.status)): c.count for c in summary.counts}
    assert counts[("media.video.v1", "pending")] == 2
    assert summary.unserved_types == ["media.video.v1"], "due runs with no live executor"
    assert "s3cret" not in repr(summary)
    assert {o.type for o in summary.oldest_pending} == {"billing.invoice.v1", "media.video.v1"}
    await maintenance.touch_worker("w1")
    assert await maintenance.prune_workers(60) == 1
    await maintenance.remove_worker("w1")
    assert await status.live_workers() == []


async def test_status_sees_other_workers_by_their_leases_and_finished_runs(
    status: PgStatus,
    maintenance: PgMaintenance,
    pg_store: PgStore,
    run_sql: Any,
    pg_dsn: str,
    schema: str,
) -> None:
    """Only simple-workflow pollers serve content.%: status lists them as other workers and
    their types are not unserved (they were: 0 live workers, every content type unserved)."""
    await maintenance.register_worker("wf-1", "host", 1, "0.1.0", ["billing.%"])
    await pg_store.enqueue_many(
        [NewRun("content.thumbnail.v1") for _ in range(3)]
        + [NewRun("content.ocr.v1") for _ in range(3)]
        + [NewRun("billing.invoice.v1"), NewRun("media.video.v1")]
    )
    # workfleet's own lease: never an "other" worker
    assert len(await pg_store.claim("wf-1", ClaimFilter((), ("billing.%",)), 1, 30)) == 1

    go = await poller_claim(pg_dsn, schema, "gohost-42", "content.thumbnail.%")
    assert go is not None and go["attempt"] == 0
    await poller_succeed(pg_dsn, schema, go["id"], {"ok": True})
    assert await poller_claim(pg_dsn, schema, "gohost-42", "content.thumbnail.%") is not None
    py = await poller_claim(pg_dsn, schema, "pyhost-7", "content.ocr.%")
    assert py is not None
    await poller_fail(pg_dsn, schema, py, "boom")  # pending again, leased_by left on the row
    py2 = await poller_claim(pg_dsn, schema, "pyhost-7", "content.ocr.%")
    assert py2 is not None
    await poller_succeed(pg_dsn, schema, py2["id"], None)
    # outside the window, and a cancellation (which keeps any worker's lease): not activity
    [(old,), (gone,)] = await run_sql(
        "INSERT INTO workflow_run (type, payload, status, leased_by, updated_at) VALUES "
        "('legacy.v1', '{}', 'succeeded', 'oldhost-1', now() - interval '1 hour'), "
        "('legacy.v1', '{}', 'cancelled', 'cancelhost-1', now()) RETURNING id"
    )
    assert old and gone

    summary = await status.status_summary(live_within=30)
    assert [w.worker_id for w in summary.workers] == ["wf-1"]
    others = {o.worker_id: (o.types, o.runs) for o in summary.other_workers}
    assert others == {
        "gohost-42": (["content.thumbnail.v1"], 2),
        "pyhost-7": (["content.ocr.v1"], 1),
    }
    assert summary.unserved_types == ["media.video.v1"]
    assert summary.other_workers[0].worker_id == "pyhost-7", "most recently seen first"

    text = render_status(summary, schema)
    assert "other workers (not workfleet; ran runs in the last 15m): 2" in text
    assert "gohost-42" in text and "content.thumbnail.v1" in text
    assert "pending types no live worker can execute (nor ran in the last 15m): media.video.v1" in (
        text
    )
    doc = json.loads(json.dumps(summary, default=_json_default))
    assert {o["worker_id"] for o in doc["other_workers"]} == {"gohost-42", "pyhost-7"}
    assert doc["other_workers_within"] == 900.0


async def test_a_types_other_worker_is_found_past_many_newer_finished_runs(
    status: PgStatus, run_sql: Any, pg_dsn: str, schema: str
) -> None:
    """The latest-finished read is capped; a pending type's own newest runs are looked at too."""
    await run_sql(
        "INSERT INTO workflow_run (type, payload) SELECT 'content.ocr.v1', '{}' "
        "FROM generate_series(1, 2)"
    )
    run = await poller_claim(pg_dsn, schema, "pyhost-7", "content.ocr.%")
    assert run is not None
    await poller_succeed(pg_dsn, schema, run["id"], None)
    await run_sql(
        "INSERT INTO workflow_run (type, payload, status, updated_at) "
        "SELECT 'billing.invoice.v1', '{}', 'succeeded', now() + interval '1 second' "
        "FROM generate_series(1, %s)",
        [OTHERS_SCAN + 10],
    )
    summary = await status.status_summary()
    assert [(o.worker_id, o.types) for o in summary.other_workers] == [
        ("pyhost-7", ["content.ocr.v1"])
    ]
    assert summary.unserved_types == []
    assert await status.other_workers() == [], "without the type, only the capped reads"


async def test_other_workers_query_reads_bounded_index_ranges(pg_dsn: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        table = sql.SQL("{}.workflow_run").format(sql.Identifier(schema))
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (type, payload, status, leased_by, lease_until, updated_at) "
                "SELECT 'content.v' || (g % 50), '{{}}', "
                "(ARRAY['succeeded', 'failed', 'cancelled', 'pending'])[g % 4 + 1], "
                "CASE WHEN g % 3 = 0 THEN 'poller-' || (g % 7) END, NULL, "
                "now() - make_interval(secs => g) FROM generate_series(1, 60000) g"
            ).format(table)
        )
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (type, payload, status, leased_by, lease_until) "
                "SELECT 'content.v1', '{{}}', 'leased', 'poller-1', now() + interval '30 s' "
                "FROM generate_series(1, 20)"
            ).format(table)
        )
        await conn.execute(sql.SQL("ANALYZE {}").format(table))
        cur = await conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) ") + Queries(schema)["status_other_workers"],
            {
                "within": 900.0,
                "types": ["content.v1", "content.v2"],
                "scan": OTHERS_SCAN,
                "per_type": 20,
                "workers": 50,
            },
        )
        row = await cur.fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    scans = [n for n in _nodes(plan[0]["Plan"]) if n.get("Relation Name") == "workflow_run"]
    assert not [n for n in scans if "Index" not in n["Node Type"]], scans
    assert {n.get("Index Name") for n in scans} == {
        "workfleet_run_lease_idx",
        "workfleet_run_finished_idx",
        "idx_workflow_run_type_status",
    }


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]
