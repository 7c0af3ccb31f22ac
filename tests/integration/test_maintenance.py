"""The worker's side loops on PostgreSQL: retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import structlog
from psycopg_pool import AsyncConnectionPool

from workfleet.db.maintenance import PgMaintenance
from workfleet.db.store import PgStore
from workfleet.models import NewRun
from workfleet.testing import RecordingObserver


@pytest.fixture
def maintenance(pg_pool: AsyncConnectionPool[Any], schema: str) -> PgMaintenance:
    return PgMaintenance(pg_pool, schema)


async def test_retention_deletes_only_old_finished_runs(
    maintenance: PgMaintenance, pg_store: PgStore, run_sql: Any
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
    deleted = await maintenance.run_retention(7, 7, 30, batch=1)
    assert deleted == 3
    remaining = {r[0] for r in await run_sql("SELECT id FROM workflow_run")}
    assert remaining == set(ids[3:])
    assert await run_sql(
        "SELECT count(*) FROM workflow_event WHERE workflow_id = ANY(%s)", [ids[:3]]
    ) == [(0,)]


async def test_runs_retention_cannot_delete_are_skipped_and_the_pass_moves_past_them(
    pg_pool: AsyncConnectionPool[Any], schema: str, pg_store: PgStore, run_sql: Any
) -> None:
    """A finished run that a user's own table references (a foreign key without ON DELETE
    CASCADE, deferred or not) failed the batch DELETE on every pass: retention stopped for
    good. Such runs are skipped, counted as bad rows and logged once per pass, and the pass
    goes on past them, even when whole batches are nothing but such runs."""
    observer = RecordingObserver()
    maintenance = PgMaintenance(pg_pool, schema, observer=observer)
    ids = [e.id for e in await pg_store.enqueue_many([NewRun("t.v1") for _ in range(7)])]
    for i, run_id in enumerate(ids):  # ids[0] is the oldest
        await run_sql(
            "UPDATE workflow_run SET status = 'succeeded', "
            "updated_at = now() - interval '40 days' - make_interval(mins => %s) WHERE id = %s",
            [len(ids) - i, run_id],
        )
    await run_sql("CREATE TABLE invoice (run_id uuid REFERENCES workflow_run (id))")
    await run_sql(
        "CREATE TABLE receipt (run_id uuid REFERENCES workflow_run (id) "
        "DEFERRABLE INITIALLY DEFERRED)"
    )
    await run_sql("INSERT INTO invoice VALUES (%s), (%s)", [ids[0], ids[1]])
    await run_sql("INSERT INTO receipt VALUES (%s)", [ids[2]])

    with structlog.testing.capture_logs() as logs:
        deleted = await maintenance.run_retention(7, 7, 30, batch=2)
    assert deleted == 4
    assert {r[0] for r in await run_sql("SELECT id FROM workflow_run")} == set(ids[:3])
    assert observer.bad_rows["retention"] == 3
    [warning] = [e for e in logs if e["event"] == "retention skipped runs it cannot delete"]
    assert warning["runs"] == 3 and "ForeignKeyViolation" in warning["error"]

    with structlog.testing.capture_logs() as logs:
        assert await maintenance.run_retention(7, 7, 30, batch=2) == 0
    assert len([e for e in logs if e["event"] == "retention skipped runs it cannot delete"]) == 1
