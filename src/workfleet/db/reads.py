"""Reading runs on PostgreSQL: :class:`workfleet.store.RunReads` and
:class:`workfleet.store.RunOperations` in SQL (``sql/reads.sql``).

Listings are keyset pages (newest first, by ``(created_at, id)``), never ``OFFSET`` scans, and
counts stop at a cap: no statement here reads a whole big table to answer a page.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from workfleet.db.queries import QueryStore
from workfleet.models import Event, EventType, RunRecord, RunStatus
from workfleet.store import MAX_PAGE, CappedCount, RunCursor, RunPage, RunQuery

Row = dict[str, Any]


def run_record(row: Row) -> RunRecord:
    """A run query's row as a :class:`RunRecord`."""
    # the run queries select exactly the RunRecord fields, in the table's words
    return RunRecord(**{**row, "status": RunStatus(row["status"])})


_record = run_record


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def query_params(query: RunQuery) -> dict[str, Any]:
    """Bind parameters of the filters shared by ``query_runs`` and ``count_runs``."""
    exact = [p.prefix for p in query.types if not p.wildcard]
    likes = [p.like() for p in query.types if p.wildcard]
    return {
        "statuses": [str(s) for s in query.statuses] or None,
        "any_type": not query.types,
        "exact": exact,
        "likes": likes,
        "since": query.since,
        "until": query.until,
        "payload": None if query.payload is None else json.dumps(query.payload),
        "error": None if query.error is None else f"%{_like_escape(query.error)}%",
    }


class PgReads(QueryStore):
    """Runs as clients, the CLI and the API read them."""

    async def get(self, run_id: uuid.UUID) -> RunRecord | None:
        rows = await self._fetch("get_run", {"id": run_id})
        return _record(rows[0]) if rows else None

    async def events(self, run_id: uuid.UUID) -> list[Event]:
        rows = await self._fetch("events", {"id": run_id})
        return [
            Event(r["id"], r["workflow_id"], EventType(r["event_type"]), r["data"], r["created_at"])
            for r in rows
        ]

    async def list_runs(
        self, *, status: RunStatus | None = None, type_like: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        rows = await self._fetch(
            "list_runs",
            {
                "status": None if status is None else str(status),
                "type_like": type_like,
                "limit": limit,
            },
        )
        return [_record(r) for r in rows]

    async def query_runs(
        self, query: RunQuery, *, limit: int = 50, after: RunCursor | None = None
    ) -> RunPage:
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        params = {
            **query_params(query),
            "after_at": None if after is None else after.created_at,
            "after_id": None if after is None else after.id,
            "limit": limit + 1,  # one more tells whether there is a next page
        }
        rows = await self._fetch("query_runs", params)
        runs = [_record(r) for r in rows[:limit]]
        more = len(rows) > limit
        return RunPage(runs, RunCursor(runs[-1].created_at, runs[-1].id) if more else None)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> CappedCount:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        rows = await self._fetch("count_runs", {**query_params(query), "cap": cap + 1})
        count = int(rows[0]["count"])
        return CappedCount(min(count, cap), count > cap)

    async def db_now(self) -> datetime:
        rows = await self._fetch("db_now", {})
        now: datetime = rows[0]["now"]
        return now


class PgRunOperations(QueryStore):
    """Cancel and redrive, with their audit events and wake-ups."""

    async def cancel(self, run_id: uuid.UUID) -> bool:
        return bool(await self._fetch("cancel", {"id": run_id}))

    async def redrive(
        self, run_id: uuid.UUID, from_statuses: Sequence[RunStatus] = (RunStatus.FAILED,)
    ) -> bool:
        rows = await self._fetch(
            "redrive", {"id": run_id, "from_statuses": [str(s) for s in from_statuses]}
        )
        return bool(rows)
