"""simple-workflow's own clients against a workfleet schema: one audit event per transition.

Its Python client (``python/simpleworkflow/client.py``) INSERTs a run, commits, then INSERTs its
own ``created`` event in a second transaction; it cancels with an UPDATE, commits, then INSERTs
its own ``cancelled`` event. Its Go client does the same in autocommit statements. workfleet's
triggers already record both transitions, so without migration 0004's dedupe trigger every run
had two ``created`` events and every cancellation two ``cancelled`` events.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.simple_workflow import (
    CANCEL,
    LOG_EVENT,
    client_cancel,
    client_create,
    poller_claim,
)
from workfleet.db.store import PgStore
from workfleet.models import NewRun, RunStatus
from workfleet.store import ClaimFilter


async def _events(run_sql: Any, run_id: uuid.UUID) -> list[tuple[str, Any]]:
    rows = await run_sql(
        "SELECT event_type, data FROM workflow_event WHERE workflow_id = %s ORDER BY id",
        [run_id],
    )
    return [(kind, data) for kind, data in rows]


@pytest.mark.parametrize("autocommit", [False, True], ids=["python-client", "go-client"])
async def test_a_clients_own_created_and_cancelled_events_are_not_doubled(
    pg_dsn: str, schema: str, run_sql: Any, autocommit: bool
) -> None:
    run_id = await client_create(pg_dsn, schema, "content.thumbnail.v1", autocommit=autocommit)
    assert run_id is not None
    assert [k for k, _ in await _events(run_sql, run_id)] == ["created"]
    # a duplicate key creates nothing and the client writes no event
    keyed = await client_create(pg_dsn, schema, "content.ocr.v1", "k1", autocommit=autocommit)
    assert await client_create(pg_dsn, schema, "content.ocr.v1", "k1") is None
    assert keyed is not None
    assert [k for k, _ in await _events(run_sql, keyed)] == ["created"]

    await client_cancel(pg_dsn, schema, run_id, autocommit=autocommit)
    events = await _events(run_sql, run_id)
    assert [k for k, _ in events] == ["created", "cancelled"]
    assert events[1][1]["previous_status"] == "pending", "the trigger's event is the one kept"


async def test_each_cancellation_of_a_redriven_run_is_recorded(
    pg_dsn: str, schema: str, run_sql: Any, pg_store: PgStore
) -> None:
    run_id = await client_create(pg_dsn, schema, "content.thumbnail.v1")
    assert run_id is not None
    await client_cancel(pg_dsn, schema, run_id)
    assert await pg_store.redrive(run_id, (RunStatus.CANCELLED,))
    await client_cancel(pg_dsn, schema, run_id)
    assert [k for k, _ in await _events(run_sql, run_id)] == [
        "created",
        "cancelled",
        "retried",
        "cancelled",
    ]


async def test_a_heartbeat_logged_after_the_cancellation_does_not_defeat_the_dedupe(
    pg_dsn: str, schema: str, run_sql: Any
) -> None:
    """simple-workflow's Python poller logs a heartbeat event even when its lease extension
    matched nothing, so one can land between the UPDATE and the client's own event."""
    run_id = await client_create(pg_dsn, schema, "content.thumbnail.v1")
    await run_sql(CANCEL, [run_id])
    await run_sql(LOG_EVENT, [run_id, "heartbeat", '{"extended_by_seconds": 30}'])
    await run_sql(LOG_EVENT, [run_id, "cancelled", None])
    kinds = [k for k, _ in await _events(run_sql, run_id)]
    assert kinds == ["created", "cancelled", "heartbeat"]


async def test_events_that_record_something_new_are_kept(
    pg_dsn: str, schema: str, run_sql: Any
) -> None:
    # with the audit trigger disabled for a bulk load, the client's event is the only one
    await run_sql("ALTER TABLE workflow_run DISABLE TRIGGER workfleet_run_created")
    run_id = await client_create(pg_dsn, schema, "content.thumbnail.v1")
    await run_sql("ALTER TABLE workflow_run ENABLE TRIGGER workfleet_run_created")
    await run_sql(LOG_EVENT, [run_id, "created", None])
    # a cancelled event for a run that is not cancelled is not a duplicate of anything
    await run_sql(LOG_EVENT, [run_id, "cancelled", None])
    assert [k for k, _ in await _events(run_sql, run_id)] == ["created", "cancelled"]


async def test_workfleets_own_paths_write_one_event_per_transition(
    pg_store: PgStore, run_sql: Any
) -> None:
    enqueued = (await pg_store.enqueue_many([NewRun("t.a.v1"), NewRun("t.a.v1", {"k": 2})]))[0]
    [(plain,)] = await run_sql(
        "INSERT INTO workflow_run (type, payload) VALUES ('t.a.v1', '{}') RETURNING id"
    )
    assert await pg_store.cancel(enqueued.id)
    await run_sql("UPDATE workflow_run SET status = 'cancelled' WHERE id = %s", [plain])
    for run_id in (enqueued.id, plain):
        assert [k for k, _ in await _events(run_sql, run_id)] == ["created", "cancelled"]
    [(created,)] = await run_sql("SELECT count(*) FROM workflow_event WHERE event_type = 'created'")
    assert created == 3


async def test_first_leased_event_attempt_differs_between_the_two_pollers(
    pg_dsn: str, schema: str, pg_store: PgStore, run_sql: Any
) -> None:
    """Pins what docs/schema.md states: workfleet numbers the try (1 first), simple-workflow's
    poller writes the attempt column as it claimed it (0 first)."""
    [theirs, ours] = await pg_store.enqueue_many([NewRun("content.a.v1"), NewRun("billing.a.v1")])
    claimed = await poller_claim(pg_dsn, schema, "gohost-1", "content.%")
    assert claimed is not None and claimed["id"] == theirs.id
    await pg_store.claim("wf-1", ClaimFilter((), ("billing.%",)), 1, 30)
    leased = await run_sql(
        "SELECT workflow_id, data FROM workflow_event WHERE event_type = 'leased'"
    )
    attempts = {run_id: (data["worker_id"], data["attempt"]) for run_id, data in leased}
    assert attempts == {theirs.id: ("gohost-1", 0), ours.id: ("wf-1", 1)}
