"""The operations façade on PostgreSQL: typed results and reasons for every refusal, input
checked before anything is written, keyset pages, schedules."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from tests.contract.harness import ALL, W, fail
from workfleet.db.schedules import PgSchedules
from workfleet.db.status import PgStatus
from workfleet.db.store import PgStore
from workfleet.errors import InvalidRequestError
from workfleet.models import NewRun, RunStatus
from workfleet.operations import ActionResult, Operations, Reason, ScheduleResult, parse_id
from workfleet.patterns import TypePattern
from workfleet.store import RunCursor, RunQuery


@pytest.fixture
def ops(pg_pool: AsyncConnectionPool[Any], schema: str, pg_store: PgStore) -> Operations:
    return Operations(
        queue=pg_store,
        reads=pg_store,
        runs=pg_store,
        status=PgStatus(pg_pool, schema),
        schedules=PgSchedules(pg_pool, schema),
    )


async def _failed_run(ops: Operations, pg_store: PgStore) -> uuid.UUID:
    run = await ops.enqueue(NewRun("ops.v1"))
    [claimed] = await pg_store.claim(W, ALL, 1, 30)
    assert await pg_store.complete_many(W, [fail(run.id, claimed.token, "Fail: no")])
    return run.id


async def test_enqueue_checks_input_before_writing(ops: Operations, run_sql: Any) -> None:
    first = await ops.enqueue(NewRun("ops.v1", {"a": 1}, idempotency_key="k"))
    again = await ops.enqueue(NewRun("ops.v1", {"a": 2}, idempotency_key="k"))
    assert (first.created, again.created, again.id) == (True, False, first.id)
    for bad, message in (
        (NewRun(" "), "non-empty"),
        (NewRun("t." + "x" * 300), "255 bytes"),
        (NewRun("ops.v1", {"x": float("nan")}), "JSON"),
        (NewRun("ops.v1", max_attempts=0), "max_attempts"),
    ):
        with pytest.raises(InvalidRequestError, match=message):
            await ops.enqueue_many([NewRun("ops.v1"), bad])
    assert await run_sql("SELECT count(*) FROM workflow_run") == [(1,)], "a bad run sends none"
    assert await ops.enqueue_many([]) == []


async def test_inspect_a_run_and_its_events(ops: Operations) -> None:
    run = await ops.enqueue(NewRun("ops.v1", {"a": 1}))
    detail = await ops.inspect(run.id)
    assert detail is not None and detail.run.payload == {"a": 1}
    assert [str(e.event_type) for e in detail.events] == ["created"]
    assert await ops.inspect(uuid.uuid4()) is None
    assert (await ops.get(run.id)) == detail.run


async def test_list_pages_through_runs_newest_first(ops: Operations) -> None:
    ids = [(await ops.enqueue(NewRun(f"ops.{i % 2}.v1"))).id for i in range(5)]
    seen: list[uuid.UUID] = []
    after: str | None = None
    while True:
        page = await ops.list_runs(limit=2, after=after)
        seen += [r.id for r in page.runs]
        if page.next is None:
            break
        after = page.next.encode()
    assert set(seen) == set(ids) and len(seen) == 5
    odd = await ops.list_runs(RunQuery(types=(TypePattern.parse("ops.1.v1"),)))
    assert {r.id for r in odd.runs} == {ids[1], ids[3]}
    assert (await ops.count_runs(RunQuery(statuses=(RunStatus.PENDING,)), cap=3)).at_least
    for kwargs, message in (
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": "yesterday"}, "cursor"),
    ):
        with pytest.raises(InvalidRequestError, match=message):
            await ops.list_runs(**kwargs)
    first = await ops.list_runs(limit=1)
    assert isinstance(first.next, RunCursor)
    second = await ops.list_runs(limit=1, after=first.next)
    assert [r.id for r in first.runs + second.runs] == seen[:2]


async def test_cancel_says_why_not(ops: Operations, pg_store: PgStore) -> None:
    run = await ops.enqueue(NewRun("ops.v1"))
    assert await ops.cancel(run.id) == ActionResult(run.id, True, None, RunStatus.CANCELLED)
    assert await ops.cancel(run.id) == ActionResult(
        run.id, False, Reason.NOT_CANCELLABLE, RunStatus.CANCELLED
    )
    failed = await _failed_run(ops, pg_store)
    assert await ops.cancel(failed) == ActionResult(
        failed, False, Reason.NOT_CANCELLABLE, RunStatus.FAILED
    )
    missing = uuid.uuid4()
    assert await ops.cancel(missing) == ActionResult(missing, False, Reason.NOT_FOUND, None)


async def test_redrive_says_why_not(ops: Operations, pg_store: PgStore, run_sql: Any) -> None:
    failed = await _failed_run(ops, pg_store)
    deleted = await _failed_run(ops, pg_store)
    assert await ops.redrive(failed) == ActionResult(failed, True, None, RunStatus.PENDING)
    assert await ops.redrive(failed) == ActionResult(
        failed, False, Reason.NOT_REDRIVABLE, RunStatus.PENDING
    )
    await run_sql("UPDATE workflow_run SET deleted_at = now() WHERE id = %s", [deleted])
    assert await ops.redrive(deleted) == ActionResult(
        deleted, False, Reason.DELETED, RunStatus.FAILED
    )
    assert (await ops.redrive(uuid.uuid4())).reason is Reason.NOT_FOUND


async def test_status_summary(ops: Operations) -> None:
    await ops.enqueue(NewRun("ops.v1", {"secret": "s3cret"}))
    summary = await ops.status()
    assert [(c.type, c.status, c.count) for c in summary.counts] == [
        ("ops.v1", RunStatus.PENDING, 1)
    ]
    assert summary.unserved_types == ["ops.v1"]
    assert "s3cret" not in repr(summary)


async def test_schedules(ops: Operations, run_sql: Any) -> None:
    record = await ops.add_schedule("reports.v1", "@daily", timezone="Europe/Paris", payload={})
    assert (record.schedule, record.timezone, record.enabled) == ("0 0 * * *", "Europe/Paris", True)
    assert await ops.list_schedules() == [record]
    sid = record.id
    assert await ops.pause_schedule(sid) == ScheduleResult(sid, True)
    assert not (await ops.get_schedule(sid)).enabled  # type: ignore[union-attr]
    assert await ops.resume_schedule(sid) == ScheduleResult(sid, True)
    assert await ops.delete_schedule(sid) == ScheduleResult(sid, True)
    for action in (ops.pause_schedule, ops.resume_schedule, ops.delete_schedule):
        assert await action(sid) == ScheduleResult(sid, False, Reason.NOT_FOUND)
    assert await ops.list_schedules() == []
    assert [r.id for r in await ops.list_schedules(include_deleted=True)] == [sid]

    [(other,)] = await run_sql(
        "INSERT INTO workflow_schedule (type, schedule, next_run_at, enabled) "
        "VALUES ('every.v1', '@every 5m', now(), false) RETURNING id"
    )
    refused = await ops.resume_schedule(other)
    assert (refused.done, refused.reason) == (False, Reason.CANNOT_FIRE)
    assert "not supported" in (refused.problem or "")

    for kwargs, message in (
        ({"run_type": "x.v1", "cron": "every day"}, "cron"),
        ({"run_type": "x.v1", "cron": "* * * * *", "timezone": "Nowhere/Land"}, "timezone"),
        ({"run_type": "", "cron": "* * * * *"}, "non-empty"),
        ({"run_type": "x.v1", "cron": "* * * * *", "max_attempts": 0}, "max_attempts"),
    ):
        with pytest.raises(InvalidRequestError, match=message):
            await ops.add_schedule(**kwargs)


def test_ids_from_user_input() -> None:
    run_id = uuid.uuid4()
    assert parse_id(str(run_id)) == run_id
    with pytest.raises(InvalidRequestError, match="not a schedule id"):
        parse_id("nope", "schedule")
