"""Cron schedules on PostgreSQL: managing them, and the ticker (once per fire time, timezone,
one ticker at a time, schedules it cannot fire)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import structlog
from psycopg_pool import AsyncConnectionPool

from workfleet.db.schedules import PgSchedules
from workfleet.testing import RecordingObserver


@pytest.fixture
def schedules(pg_pool: AsyncConnectionPool[Any], schema: str) -> PgSchedules:
    return PgSchedules(pg_pool, schema)


async def _due_now(run_sql: Any, schedule_id: uuid.UUID) -> None:
    await run_sql(
        "UPDATE workflow_schedule SET next_run_at = date_trunc('second', now()) "
        "- interval '1 second' WHERE id = %s",
        [schedule_id],
    )


async def test_schedule_lifecycle(schedules: PgSchedules, run_sql: Any) -> None:
    sid = await schedules.add_schedule("reports.daily.v1", "0 9 * * *", "Europe/Paris", {"a": 1})
    [record] = await schedules.list_schedules()
    assert (record.id, record.enabled, record.payload) == (sid, True, {"a": 1})
    local = record.next_run_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 0), "fire times are in the schedule's timezone"
    assert await schedules.set_schedule_enabled(sid, False)
    assert not (await schedules.list_schedules())[0].enabled
    assert await schedules.set_schedule_enabled(sid, True)
    assert await schedules.delete_schedule(sid)
    assert await schedules.list_schedules() == []
    assert not await schedules.delete_schedule(sid)
    with pytest.raises(ValueError, match="cron"):
        await schedules.add_schedule("x.v1", "every day")
    with pytest.raises(ValueError, match="timezone"):
        await schedules.add_schedule("x.v1", "0 9 * * *", "Nowhere/Land")


async def test_tick_fires_once_and_advances(schedules: PgSchedules, run_sql: Any) -> None:
    sid = await schedules.add_schedule("reports.v1", "*/5 * * * *", payload={"r": 1}, priority=7)
    assert await schedules.tick_schedules() == [], "not due yet"
    await _due_now(run_sql, sid)
    [fired] = await schedules.tick_schedules()
    assert fired.run_id is not None and fired.schedule_id == sid
    rows = await run_sql("SELECT type, payload, priority, idempotency_key FROM workflow_run")
    assert rows == [("reports.v1", {"r": 1}, 7, f"schedule:{sid}:{int(fired.fire_at.timestamp())}")]
    [record] = await schedules.list_schedules()
    assert record.next_run_at > fired.fire_at and record.last_run_at is not None
    assert await schedules.tick_schedules() == []


async def test_two_tickers_create_one_run_per_fire_time(
    pg_pool: AsyncConnectionPool[Any], schema: str, run_sql: Any
) -> None:
    a, b = PgSchedules(pg_pool, schema), PgSchedules(pg_pool, schema)
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


async def test_invalid_hand_inserted_schedule_is_disabled(
    schedules: PgSchedules, run_sql: Any
) -> None:
    await run_sql(
        "INSERT INTO workflow_schedule (type, schedule, next_run_at) "
        "VALUES ('bad.v1', 'whenever', now() - interval '1 minute')"
    )
    good = await schedules.add_schedule("good.v1", "* * * * *")
    await _due_now(run_sql, good)
    fired = await schedules.tick_schedules()
    assert [f.type for f in fired] == ["good.v1"]
    states = {r.type: r.enabled for r in await schedules.list_schedules()}
    assert states == {"bad.v1": False, "good.v1": True}


async def test_descriptor_schedules_fire_and_unusable_ones_are_flagged(
    schedules: PgSchedules, run_sql: Any
) -> None:
    """Rows as simple-workflow's Python client writes them (croniter accepts @hourly): the
    ticker used to disable them when due. `@every 5m` is accepted by neither, and says so."""
    await run_sql(
        "INSERT INTO workflow_schedule (type, schedule, next_run_at) VALUES "
        "('hourly.v1', '@hourly', date_trunc('second', now()) - interval '1 second'), "
        "('every.v1', '@every 5m', now() - interval '1 minute')"
    )
    problems = {r.type: r.problem for r in await schedules.list_schedules()}
    assert problems["hourly.v1"] is None
    assert "not supported" in (problems["every.v1"] or "")
    fired = await schedules.tick_schedules()
    assert [f.type for f in fired] == ["hourly.v1"] and fired[0].run_id is not None
    records = {r.type: r for r in await schedules.list_schedules()}
    assert records["hourly.v1"].enabled and not records["every.v1"].enabled
    nxt = records["hourly.v1"].next_run_at
    assert (nxt.minute, nxt.second) == (0, 0) and nxt > fired[0].fire_at
    assert records["hourly.v1"].schedule == "@hourly", "a row written elsewhere is kept as is"
    sid = await schedules.add_schedule("daily.v1", "@daily")
    [added] = [r for r in await schedules.list_schedules() if r.id == sid]
    assert added.schedule == "0 0 * * *", "stored as 5 fields, which every tool reads"


async def test_seconds_until_next_schedule(schedules: PgSchedules) -> None:
    assert await schedules.seconds_until_next_schedule() is None
    await schedules.add_schedule("x.v1", "* * * * *")
    seconds = await schedules.seconds_until_next_schedule()
    assert seconds is not None and 0 <= seconds <= 60


async def test_a_schedule_whose_run_is_refused_is_disabled_and_the_others_fire(
    pg_pool: AsyncConnectionPool[Any], schema: str, run_sql: Any
) -> None:
    """Schedules whose run the database refuses (a type over the INSERT trigger's 255 bytes, a
    type a CHECK constraint rejects: any data error) used to fail the whole tick, and every tick
    after it: no schedule of the schema fired again. Each is disabled with a logged reason and
    counted as a bad row; the others fire, a '-infinity' fire time included."""
    observer = RecordingObserver()
    schedules = PgSchedules(pg_pool, schema, observer=observer)
    long_type = "t." + "x" * 300
    await run_sql(
        "INSERT INTO workflow_schedule (type, schedule, next_run_at) VALUES "
        "(%s, '* * * * *', now() - interval '2 minutes'), "
        "('nul.v1', '* * * * *', now() - interval '2 minutes'), "
        "('forever.v1', '* * * * *', '-infinity')",
        [long_type],
    )
    await run_sql("ALTER TABLE workflow_run ADD CONSTRAINT no_nul_type CHECK (type <> 'nul.v1')")
    good = await schedules.add_schedule("good.v1", "* * * * *")
    await _due_now(run_sql, good)
    with structlog.testing.capture_logs() as logs:
        fired = await schedules.tick_schedules()
    assert sorted(f.type for f in fired) == ["forever.v1", "good.v1"]
    assert all(f.run_id is not None for f in fired)
    states = {r.type: r.enabled for r in await schedules.list_schedules()}
    assert states == {long_type: False, "nul.v1": False, "forever.v1": True, "good.v1": True}
    assert observer.bad_rows["schedules"] == 2
    refused = [e for e in logs if e["event"] == "disabling a schedule whose run is refused"]
    assert len(refused) == 2, logs
    assert any("255 bytes" in e["error"] for e in refused)
    assert await run_sql("SELECT type FROM workflow_run ORDER BY type") == [
        ("forever.v1",),
        ("good.v1",),
    ]
    await _due_now(run_sql, good)
    assert [f.type for f in await schedules.tick_schedules()] == ["good.v1"], "ticks go on"
