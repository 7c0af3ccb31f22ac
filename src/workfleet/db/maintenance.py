"""The worker's side loops on PostgreSQL: :class:`workfleet.store.MaintenanceStore` in SQL
(``sql/maintenance.sql``): live-worker rows, retention and the pending gauges.

Retention is leader-only: each batch's transaction takes an advisory lock keyed by the schema,
so at most one worker per database deletes at a time; the others skip the pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from workfleet.db.locks import lead
from workfleet.db.queries import QueryStore, store_error
from workfleet.patterns import TypePattern
from workfleet.store import Observer, PendingStat

DAY = 86_400.0


class PgMaintenance(QueryStore):
    """Live workers, retention and the pending gauges.

    ``observer`` counts the runs retention cannot delete (``bad_row("retention")``).
    """

    def __init__(
        self, pool: AsyncConnectionPool[Any], schema: str, *, observer: Observer | None = None
    ) -> None:
        super().__init__(pool, schema)
        self.observer = observer

    # --- live workers ---------------------------------------------------------------------

    async def register_worker(
        self, worker_id: str, hostname: str, pid: int, version: str, patterns: Sequence[str]
    ) -> None:
        await self._fetch(
            "worker_register",
            {
                "worker_id": worker_id,
                "hostname": hostname,
                "pid": pid,
                "version": version,
                "patterns": list(patterns),
            },
        )

    async def touch_worker(self, worker_id: str) -> None:
        await self._fetch("worker_touch", {"worker_id": worker_id})

    async def remove_worker(self, worker_id: str) -> None:
        await self._fetch("worker_remove", {"worker_id": worker_id})

    async def prune_workers(self, older_than: float) -> int:
        return len(await self._fetch("worker_prune", {"older_than": float(older_than)}))

    # --- the pending gauges -----------------------------------------------------------------

    async def pending_by_prefix(self, patterns: Sequence[TypePattern]) -> list[PendingStat]:
        """Runnable (due, pending, not deleted) runs per pattern, labelled ``str(pattern)``."""
        if not patterns:
            return []
        rows = await self._fetch(
            "pending_by_prefix",
            {"names": [str(p) for p in patterns], "likes": [p.like() for p in patterns]},
        )
        return [
            PendingStat(r["prefix"], int(r["pending"]), float(r["oldest_age_seconds"]))
            for r in rows
        ]

    # --- retention ----------------------------------------------------------------------------

    async def run_retention(
        self,
        succeeded_days: float,
        cancelled_days: float,
        failed_days: float,
        batch: int = 1000,
    ) -> int:
        """Delete finished runs past their age, in batches; 0 when another worker is doing it."""
        ages = {
            "succeeded": succeeded_days * DAY,
            "cancelled": cancelled_days * DAY,
            "failed": failed_days * DAY,
        }
        params = {**ages, "min_age": min(ages.values()), "batch": batch}
        deleted = 0
        try:
            while True:
                async with self.pool.connection() as conn, conn.transaction():
                    cur = conn.cursor(row_factory=dict_row)
                    if await lead(cur, self.q, "retention", self.schema) is None:
                        return deleted
                    await cur.execute(self.q["retention_delete"], params)
                    count = len(await cur.fetchall())
                deleted += count
                if count < batch:
                    return deleted
        except psycopg.Error as exc:
            raise store_error("retention", exc) from exc
