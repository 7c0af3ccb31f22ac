"""Cron schedules on PostgreSQL: :class:`workfleet.store.ScheduleAdmin` (managing
``workflow_schedule``) and :class:`workfleet.store.ScheduleStore` (the worker's ticker), in SQL
(``sql/schedules.sql``).

The tick is leader-only: a transaction-level advisory lock keyed by the schema lets at most one
worker per database fire schedules at a time; the others skip that pass. A fire time creates at
most one run (idempotency key ``schedule:<id>:<unix seconds>``) whoever fires it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from workfleet.db.locks import lead
from workfleet.db.pool import tolerate_infinity
from workfleet.db.queries import DATA_ERRORS, QueryStore, store_error
from workfleet.schedule import (
    next_fire,
    schedule_key,
    schedule_problem,
    validate_cron,
    validate_timezone,
)
from workfleet.store import FiredRun, Observer, ScheduleRecord

Row = dict[str, Any]
_log = structlog.get_logger("workfleet.schedules")


def _record(row: Row) -> ScheduleRecord:
    return ScheduleRecord(**row, problem=schedule_problem(row["schedule"], row["timezone"]))


class PgSchedules(QueryStore):
    """Schedules as the CLI and the API manage them, and the ticker that fires them.

    ``observer`` counts the schedules the ticker disables (``bad_row("schedules")``).
    """

    def __init__(
        self, pool: AsyncConnectionPool[Any], schema: str, *, observer: Observer | None = None
    ) -> None:
        super().__init__(pool, schema)
        self.observer = observer

    async def _db_now(self) -> datetime:
        rows = await self._fetch("db_now", {})
        now: datetime = rows[0]["now"]
        return now

    # --- managing -------------------------------------------------------------------------

    async def add_schedule(
        self,
        run_type: str,
        cron: str,
        timezone: str = "UTC",
        payload: Any = None,
        priority: int = 100,
        max_attempts: int = 3,
    ) -> uuid.UUID:
        """Validate and insert a schedule; its first fire time is computed from the DB clock."""
        if not run_type.strip():
            raise ValueError("schedule type must not be empty")
        cron = validate_cron(cron)
        validate_timezone(timezone)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        first = next_fire(cron, timezone, await self._db_now())
        rows = await self._fetch(
            "schedule_insert",
            {
                "type": run_type,
                "payload": json.dumps({} if payload is None else payload),
                "schedule": cron,
                "timezone": timezone,
                "next_run_at": first,
                "priority": priority,
                "max_attempts": max_attempts,
            },
        )
        schedule_id: uuid.UUID = rows[0]["id"]
        return schedule_id

    async def get_schedule(self, schedule_id: uuid.UUID) -> ScheduleRecord | None:
        rows = await self._fetch("schedule_get", {"id": schedule_id})
        return _record(rows[0]) if rows else None

    async def list_schedules(self, include_deleted: bool = False) -> list[ScheduleRecord]:
        rows = await self._fetch("schedule_list", {"include_deleted": include_deleted})
        return [_record(r) for r in rows]

    async def set_schedule_enabled(self, schedule_id: uuid.UUID, enabled: bool) -> bool:
        """Pause or resume; resuming recomputes the next fire time from now (no catch-up)."""
        next_run_at = None
        if enabled:
            record = await self.get_schedule(schedule_id)
            if record is None:
                return False
            next_run_at = next_fire(record.schedule, record.timezone, await self._db_now())
        rows = await self._fetch(
            "schedule_set_enabled",
            {"id": schedule_id, "enabled": enabled, "next_run_at": next_run_at},
        )
        return bool(rows)

    async def delete_schedule(self, schedule_id: uuid.UUID) -> bool:
        return bool(await self._fetch("schedule_delete", {"id": schedule_id}))

    # --- the ticker -----------------------------------------------------------------------

    async def seconds_until_next_schedule(self) -> float | None:
        rows = await self._fetch("schedule_next_due", {})
        seconds = rows[0]["seconds"] if rows else None
        return None if seconds is None else float(seconds)

    async def tick_schedules(self) -> list[FiredRun]:
        """Fire every due schedule once, in one transaction; [] when another worker is ticking.

        A fire time creates at most one run (key ``schedule:<id>:<unix seconds>``); the next
        fire time is computed after the database's now, so a long outage fires once, not once
        per missed tick. No schedule can stop the others: one whose cron or timezone is invalid,
        or whose run the database refuses (each is fired under a savepoint), is disabled with a
        logged reason and counted as a bad row.
        """
        fired: list[FiredRun] = []
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                tolerate_infinity(cur)  # a hand-written '-infinity' fire time is just overdue
                db_now = await lead(cur, self.q, "schedules", self.schema)
                if db_now is None:
                    return []
                await cur.execute(self.q["schedule_due"], {})
                for s in await cur.fetchall():
                    try:
                        following = next_fire(s["schedule"], s["timezone"], db_now)
                    except ValueError as exc:
                        await self._disable(cur, s, "disabling invalid schedule", str(exc))
                        continue
                    try:
                        async with conn.transaction():  # a savepoint: a refusal undoes this one
                            run_id = await self._fire(cur, s, following)
                    except DATA_ERRORS as exc:
                        reason = f"{type(exc).__name__}: {exc}"
                        await self._disable(
                            cur, s, "disabling a schedule whose run is refused", reason
                        )
                        continue
                    fired.append(FiredRun(s["id"], s["type"], s["next_run_at"], run_id))
        except psycopg.Error as exc:
            raise store_error("schedule tick", exc) from exc
        return fired

    async def _fire(
        self, cur: psycopg.AsyncCursor[Row], s: Row, following: datetime
    ) -> uuid.UUID | None:
        """Create the run of ``s``'s due fire time (None: it exists) and advance ``s``."""
        await cur.execute(
            self.q["schedule_fire"],
            {
                "type": s["type"],
                "payload": s["payload"],
                "priority": s["priority"],
                "max_attempts": s["max_attempts"],
                "key": schedule_key(s["id"], s["next_run_at"]),
            },
        )
        created = await cur.fetchone()
        await cur.execute(self.q["schedule_advance"], {"id": s["id"], "next_run_at": following})
        return created["id"] if created else None

    async def _disable(self, cur: psycopg.AsyncCursor[Row], s: Row, event: str, why: str) -> None:
        await cur.execute(self.q["schedule_disable"], {"id": s["id"]})
        # a type long enough to be refused is long enough to flood a log line
        _log.warning(event, schedule_id=str(s["id"]), type=s["type"][:100], error=why)
        if self.observer is not None:
            self.observer.bad_row("schedules")
