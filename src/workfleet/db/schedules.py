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
from workfleet.db.queries import QueryStore, store_error
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
        per missed tick. A schedule whose cron or timezone is invalid is disabled and logged.
        """
        fired: list[FiredRun] = []
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                db_now = await lead(cur, self.q, "schedules", self.schema)
                if db_now is None:
                    return []
                await cur.execute(self.q["schedule_due"], {})
                for s in await cur.fetchall():
                    try:
                        following = next_fire(s["schedule"], s["timezone"], db_now)
                    except ValueError as exc:
                        _log.warning(
                            "disabling invalid schedule", schedule_id=str(s["id"]), error=str(exc)
                        )
                        await cur.execute(self.q["schedule_disable"], {"id": s["id"]})
                        continue
                    await cur.execute(
                        self.q["schedule_fire"],
                        {
                            "type": s["type"],
                            "payload": json.dumps(s["payload"]),
                            "priority": s["priority"],
                            "max_attempts": s["max_attempts"],
                            "key": schedule_key(s["id"], s["next_run_at"]),
                        },
                    )
                    created = await cur.fetchone()
                    await cur.execute(
                        self.q["schedule_advance"], {"id": s["id"], "next_run_at": following}
                    )
                    fired.append(
                        FiredRun(
                            s["id"], s["type"], s["next_run_at"], created["id"] if created else None
                        )
                    )
        except psycopg.Error as exc:
            raise store_error("schedule tick", exc) from exc
        return fired
