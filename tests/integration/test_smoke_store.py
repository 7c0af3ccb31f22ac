"""Smoke: the migrated schema accepts runs and the claim leases them."""

from __future__ import annotations

from workfleet.db.store import PgStore
from workfleet.models import NewRun, RunStatus
from workfleet.store import ClaimFilter


async def test_enqueue_then_claim(pg_store: PgStore) -> None:
    [first] = await pg_store.enqueue_many([NewRun("smoke.a.v1", {"n": 1})])
    claimed = await pg_store.claim("w", ClaimFilter((), ("smoke.%",)), 5, 30)
    assert [c.id for c in claimed] == [first.id]
    record = await pg_store.get(first.id)
    assert record is not None
    assert record.status is RunStatus.LEASED
