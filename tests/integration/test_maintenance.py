"""The worker's side loops on PostgreSQL: retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from workfleet.db.maintenance import PgMaintenance
from workfleet.db.store import PgStore
from workfleet.models import NewRun


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
