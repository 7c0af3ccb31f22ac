"""Bounded selections, bulk actions and per-prefix stats on PostgreSQL (``sql/batches.sql``):
:class:`workfleet.store.RunBatches` and :class:`workfleet.store.StatsReads`.

Every statement is bounded: selections by their ``LIMIT`` (at most
:data:`~workfleet.store.MAX_BULK`), stats by a cap per count, so none reads a whole big table.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from workfleet.db.queries import QueryStore
from workfleet.db.reads import query_params, run_record
from workfleet.models import RunRecord, RunStatus
from workfleet.patterns import TypePattern
from workfleet.store import MAX_BULK, PrefixStats, RunQuery

# The deepest offset page the API serves: OFFSET reads and throws away every row it skips, so
# deep offsets are refused (keyset cursors serve any depth at the same cost).
MAX_OFFSET = 10_000


class PgBatches(QueryStore):
    """Selections by filter or id, and the bulk actions on them."""

    async def match_ids(
        self,
        query: RunQuery,
        *,
        ids: Sequence[uuid.UUID] | None = None,
        limit: int,
        offset: int = 0,
    ) -> list[uuid.UUID]:
        # one more than the biggest selection lets a caller tell that a filter selects more
        if not 1 <= limit <= MAX_BULK + 1:
            raise ValueError(f"limit must be between 1 and {MAX_BULK + 1}")
        if not 0 <= offset <= MAX_OFFSET:
            raise ValueError(f"offset must be between 0 and {MAX_OFFSET}")
        params = {
            **query_params(query),
            "ids": None if ids is None else list(ids),
            "limit": limit,
            "offset": offset,
        }
        return [r["id"] for r in await self._fetch("match_run_ids", params)]

    async def id_for_key(self, key: str) -> uuid.UUID | None:
        rows = await self._fetch("run_id_for_key", {"key": key})
        return rows[0]["id"] if rows else None

    async def get_many(self, ids: Sequence[uuid.UUID]) -> list[RunRecord]:
        if not ids:
            return []
        rows = {r["id"]: run_record(r) for r in await self._fetch("get_runs", {"ids": list(ids)})}
        return [rows[i] for i in ids if i in rows]

    async def cancel_many(self, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        if not ids:
            return []
        return [r["id"] for r in await self._fetch("cancel_many", {"ids": list(ids)})]

    async def redrive_many(
        self, ids: Sequence[uuid.UUID], from_statuses: Sequence[RunStatus] = (RunStatus.FAILED,)
    ) -> list[uuid.UUID]:
        if not ids:
            return []
        params = {"ids": list(ids), "from_statuses": [str(s) for s in from_statuses]}
        return [r["id"] for r in await self._fetch("redrive_many", params)]


class PgStats(QueryStore):
    """Per-prefix depth and rates."""

    async def prefix_stats(
        self, patterns: Sequence[TypePattern], *, window_seconds: float, cap: int
    ) -> list[PrefixStats]:
        rows = []
        # one statement per pattern: see prefix_stats in sql/batches.sql
        for pattern in sorted(set(patterns), key=str):
            params = {
                "name": str(pattern),
                "like": pattern.like(),
                "window": window_seconds,
                "cap": cap,
            }
            rows += await self._fetch("prefix_stats", params)
        return [
            PrefixStats(
                prefix=r["prefix"],
                pending=int(r["pending"]),
                due=int(r["due"]),
                leased=int(r["leased"]),
                oldest_pending_age_seconds=float(r["oldest_pending_age_seconds"]),
                succeeded_recent=int(r["succeeded_recent"]),
                failed_recent=int(r["failed_recent"]),
                window_seconds=window_seconds,
                cap=cap,
            )
            for r in rows
        ]

    async def known_prefixes(self) -> list[str]:
        return [r["prefix"] for r in await self._fetch("type_prefixes", {})]
