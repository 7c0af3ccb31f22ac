"""Operations store: schedules (once per fire time, timezone), retention, workers, status."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tests.integration.simple_workflow import poller_claim, poller_fail, poller_succeed
from workfleet.cli.commands import _json_default
from workfleet.cli.render import render_status
from workfleet.db.admin import OTHERS_SCAN, AdminStore
from workfleet.db.queries import Queries
from workfleet.db.store import PgStore
from workfleet.models import NewRun
from workfleet.store import ClaimFilter


@pytest.fixture
def admin(pg_pool: AsyncConnectionPool[Any], schema: str) -> AdminStore:
    return AdminStore(pg_pool, schema)


async def _due_now(run_sql: Any, schedule_id: uuid.UUID) -> None:
    await run_sql(
        "UPDATE workflow_schedule SET next_run_at = date_trunc('second', now()) "
        "- interval '1 second' WHERE id = %s",
        [schedule_id],
    )


async def test_schedule_lifecycle(admin: AdminStore, run_sql: Any) -> None:
    sid = await admin.add_schedule("reports.daily.v1", "0 9 * * *", "Europe/Paris", {"a": 1})
    [record] = await admin.list_schedules()
    assert (record.id, record.enabled, record.payload) == (sid, True, {"a": 1})
    local = record.next_run_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 0), "fire times are in the schedule's timezone"
    assert await admin.set_schedule_enabled(sid, False)
    assert not (await admin.list_schedules())[0].enabled
    assert await admin.set_schedule_enabled(sid, True)
    assert await admin.delete_schedule(sid)
    assert await admin.list_schedules() == []
    assert not await admin.delete_schedule(sid)
    with pytest.raises(ValueError, match="cron"):
        await admin.add_schedule("x.v1", "every day")
    with pytest.raises(ValueError, match="timezone"):
        await admin.add_schedule("x.v1", "0 9 * * *", "Nowhere/Land")


async def test_tick_fires_once_and_advances(admin: AdminStore, run_sql: Any) -> None:
    sid = await admin.add_schedule("reports.v1", "*/5 * * * *", payload={"r": 1}, priority=7)
    assert await admin.tick_schedules() == [], "not due yet"
    await _due_now(run_sql, sid)
    [fired] = await admin.tick_schedules()
    assert fired.run_id is not None and fired.schedule_id == sid
    rows = await run_sql("SELECT type, payload, priority, idempotency_key FROM workflow_run")
    assert rows == [("reports.v1", {"r": 1}, 7, f"schedule:{sid}:{int(fired.fire_at.timestamp())}")]
    [record] = await admin.list_schedules()
    assert record.next_run_at > fired.fire_at and record.last_run_at is not None
    assert await admin.tick_schedules() == []


async def test_two_tickers_create_one_run_per_fire_time(
    pg_pool: AsyncConnectionPool[Any], schema: str, run_sql: Any
) -> None:
    a, b = AdminStore(pg_pool, schema), AdminStore(pg_pool, schema)
    sid = await a.add_schedule("reports.v1", "* * * * *")
    for i in range(1, 6):
        # a distinct past fire time each round, ticked by three tickers at once
        await run_sql(
            "UPDATE workflow_schedule SET next_run_at = "
            "date_trunc('minute', now()) - make_interval(mins => %s) WHERE id = %s",
            [i, sid],
        )
        fired = await asyncio.gather(a.tick_schedules(), b.tick_schedules(), a.tick_schedules())
        created = [f for batch in fired for f in batch if f.run_id is not None]
        assert len(created) == 1, fired
        assert await run_sql("SELECT count(*) FROM workflow_run") == [(i,)]


async def test_invalid_hand_inserted_schedule_is_disabled(admin: AdminStore, run_sql: Any) -> None:
    await run_sql(
        "INSERT INTO workflow_schedule (type, schedule, next_run_at) "
        "VALUES ('bad.v1', 'whenever', now() - interval '1 minute')"
    )
    good = await admin.add_schedule("good.v1", "* * * * *")
    await _due_now(run_sql, good)
    fired = await admin.tick_schedules()
    assert [f.type for f in fired] == ["good.v1"]
    states = {r.type: r.enabled for r in await admin.list_schedules()}
    assert states == {"bad.v1": False, "good.v1": True}


async def test_descriptor_schedules_fire_and_unusable_ones_are_flagged(
    admin: AdminStore, run_sql: Any
) -> None:
    """Rows as simple-workflow's Python client writes them (croniter accepts @hourly): the
    ticker used to disable them when due. `@every 5m` is accepted by neither, and says so."""
    await run_sql(
        "INSERT INTO workflow_schedule (type, schedule, next_run_at) VALUES "
        "('hourly.v1', '@hourly', date_trunc('second', now()) - interval '1 second'), "
        "('every.v1', '@every 5m', now() - interval '1 minute')"
    )
    problems = {r.type: r.problem for r in await admin.list_schedules()}
    assert problems["hourly.v1"] is None
    assert "not supported" in (problems["every.v1"] or "")
    fired = await admin.tick_schedules()
    assert [f.type for f in fired] == ["hourly.v1"] and fired[0].run_id is not None
    records = {r.type: r for r in await admin.list_schedules()}
    assert records["hourly.v1"].enabled and not records["every.v1"].enabled
    nxt = records["hourly.v1"].next_run_at
    assert (nxt.minute, nxt.second) == (0, 0) and nxt > fired[0].fire_at
    assert records["hourly.v1"].schedule == "@hourly", "a row written elsewhere is kept as is"
    sid = await admin.add_schedule("daily.v1", "@daily")
    [added] = [r for r in await admin.list_schedules() if r.id == sid]
    assert added.schedule == "0 0 * * *", "stored as 5 fields, which every tool reads"


async def test_seconds_until_next_schedule(admin: AdminStore) -> None:
    assert await admin.seconds_until_next_schedule() is None
    await admin.add_schedule("x.v1", "* * * * *")
    seconds = await admin.seconds_until_next_schedule()
    assert seconds is not None and 0 <= seconds <= 60


async def test_retention_deletes_only_old_finished_runs(
    admin: AdminStore, pg_store: PgStore, run_sql: Any
) -> None:
    ids = [e.id for e in await pg_store.enqueue_many([NewRun("t.v1") for _ in range(6)])]
    old = timedelta(days=40)
    states = ["succeeded", "failed", "cancelled", "pending", "succeeded", "failed"]
    for run_id, status, age in zip(
        ids, states, [old, old, old, old, timedelta(days=1), timedelta(days=10)], strict=True
    ):
        await run_sql(
            "UPDATE workflow_run SET status = %s, updated_at = now() - %s WHERE id = %s",
            [status, age, run_id],
        )
    deleted = await admin.run_retention(7, 7, 30, batch=1)
    assert deleted == 3
    remaining = {r[0] for r in await run_sql("SELECT id FROM workflow_run")}
    assert remaining == set(ids[3:])
    assert await run_sql(
        "SELECT count(*) FROM workflow_event WHERE workflow_id = ANY(%s)", [ids[:3]]
    ) == [(0,)]


async def test_workers_and_status(admin: AdminStore, pg_store: PgStore, run_sql: Any) -> None:
    await admin.register_worker("w1", "host", 1, "0.1.0", ["billing.%"])
    await admin.register_worker("w2", "host", 2, "0.1.0", ["media.video.v1"])
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
    summary = await admin.status_summary(live_within=30)
    assert [w.worker_id for w in summary.workers] == ["w1"]
    counts = {(c.type, str(c.status)): c.count for c in summary.counts}
    assert counts[("media.video.v1", "pending")] == 2
    assert summary.unserved_types == ["media.video.v1"], "due runs with no live executor"
    assert "s3cret" not in repr(summary)
    assert {o.type for o in summary.oldest_pending} == {"billing.invoice.v1", "media.video.v1"}
    await admin.touch_worker("w1")
    assert await admin.prune_workers(60) == 1
    await admin.remove_worker("w1")
    assert await admin.live_workers() == []


async def test_status_sees_other_workers_by_their_leases_and_finished_runs(
    admin: AdminStore, pg_store: PgStore, run_sql: Any, pg_dsn: str, schema: str
) -> None:
    """Only simple-workflow pollers serve content.%: status lists them as other workers and
    their types are not unserved (they were: 0 live workers, every content type unserved)."""
    await admin.register_worker("wf-1", "host", 1, "0.1.0", ["billing.%"])
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

    summary = await admin.status_summary(live_within=30)
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
    admin: AdminStore, run_sql: Any, pg_dsn: str, schema: str
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
    summary = await admin.status_summary()
    assert [(o.worker_id, o.types) for o in summary.other_workers] == [
        ("pyhost-7", ["content.ocr.v1"])
    ]
    assert summary.unserved_types == []
    assert await admin.other_workers() == [], "without the type, only the capped reads"


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
