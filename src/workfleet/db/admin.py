"""Operations on PostgreSQL beside the run store: live workers, status, schedules, retention.

Leader-only passes (the cron tick, retention) take a transaction-level advisory lock keyed by
the schema: at most one worker per database does them at a time, the others skip that pass.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row

from workfleet.db.locks import lock_key
from workfleet.db.queries import QueryStore
from workfleet.errors import StoreError
from workfleet.models import RunStatus
from workfleet.patterns import TypePattern
from workfleet.schedule import (
    next_fire,
    schedule_key,
    schedule_problem,
    validate_cron,
    validate_timezone,
)
from workfleet.store import FiredRun, PendingStat

Row = dict[str, Any]
_log = structlog.get_logger("workfleet.schedules")
DAY = 86_400.0

# How `workfleet status` looks for other workers (see the status_other_workers query): runs
# they held or finished in the last 15 minutes, read from at most 2,000 leases and 2,000
# finished runs, plus the 20 newest runs per status of up to 200 otherwise unserved types; at
# most 50 workers are listed. Measured on PostgreSQL 15 with a million finished runs: 0.7 ms.
OTHERS_WITHIN = 900.0
OTHERS_SCAN = 2000
OTHERS_PER_TYPE = 20
OTHERS_PROBED_TYPES = 200
OTHERS_LISTED = 50


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    worker_id: str
    hostname: str
    pid: int
    version: str
    patterns: list[str]
    started_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class TypeCount:
    type: str
    status: RunStatus
    count: int


@dataclass(frozen=True, slots=True)
class OldestPending:
    type: str
    age_seconds: float
    due: int


@dataclass(frozen=True, slots=True)
class OtherWorker:
    """A ``leased_by`` value on recent runs that names no workfleet worker: another poller
    (simple-workflow's Go or Python workers) serving the same schema. ``runs`` counts the runs
    the bounded look saw, not every run it ever did."""

    worker_id: str
    types: list[str]
    runs: int
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class StatusSummary:
    """What ``workfleet status`` shows. Never contains payloads.

    ``unserved_types`` are due pending types that no live workfleet worker has a pattern for
    and no other worker ran within ``other_workers_within`` seconds.
    """

    counts: list[TypeCount]
    oldest_pending: list[OldestPending]
    workers: list[WorkerRecord]
    unserved_types: list[str]
    other_workers: list[OtherWorker]
    other_workers_within: float


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A ``workflow_schedule`` row; ``problem`` says why workfleet cannot fire it (its cron
    expression or timezone, as other tools may write what workfleet does not accept)."""

    id: uuid.UUID
    type: str
    payload: Any
    schedule: str
    timezone: str
    next_run_at: datetime
    last_run_at: datetime | None
    enabled: bool
    priority: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    problem: str | None = None


class AdminStore(QueryStore):
    """PostgreSQL-only operations used by the worker's side loops and by the CLI."""

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

    async def live_workers(self, live_within: float = 30.0) -> list[WorkerRecord]:
        rows = await self._fetch("workers_live", {"live_within": float(live_within)})
        return [WorkerRecord(**r) for r in rows]

    # --- status -----------------------------------------------------------------------------

    async def status_summary(
        self, live_within: float = 30.0, active_within: float = OTHERS_WITHIN
    ) -> StatusSummary:
        """Counts by type and status, oldest due pending run per type, live workers, other
        workers active within ``active_within`` seconds, and the pending types nobody serves."""
        counts = [
            TypeCount(r["type"], RunStatus(r["status"]), int(r["count"]))
            for r in await self._fetch("status_counts", {})
        ]
        oldest = [
            OldestPending(r["type"], float(r["age_seconds"]), int(r["due"]))
            for r in await self._fetch("status_oldest_pending", {})
        ]
        workers = await self.live_workers(live_within)
        patterns = [TypePattern.parse(p) for w in workers for p in w.patterns if p]
        candidates = sorted(o.type for o in oldest if not any(p.matches(o.type) for p in patterns))
        others = await self.other_workers(candidates[:OTHERS_PROBED_TYPES], active_within)
        served = {t for w in others for t in w.types}
        unserved = [t for t in candidates if t not in served]
        return StatusSummary(counts, oldest, workers, unserved, others, active_within)

    async def other_workers(
        self, types: Sequence[str] = (), within: float = OTHERS_WITHIN
    ) -> list[OtherWorker]:
        """Workers that are not workfleet's, from the ``leased_by`` of runs they held or
        finished within ``within`` seconds, most recently seen first (bounded index reads:
        current leases, the latest finished runs, and the newest runs of each of ``types``)."""
        rows = await self._fetch(
            "status_other_workers",
            {
                "within": float(within),
                "types": list(types),
                "scan": OTHERS_SCAN,
                "per_type": OTHERS_PER_TYPE,
                "workers": OTHERS_LISTED,
            },
        )
        return [
            OtherWorker(r["worker_id"], list(r["types"]), int(r["runs"]), r["last_seen_at"])
            for r in rows
        ]

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

    # --- schedules ------------------------------------------------------------------------

    async def _db_now(self) -> datetime:
        rows = await self._fetch("db_now", {})
        now: datetime = rows[0]["now"]
        return now

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

    async def list_schedules(self, include_deleted: bool = False) -> list[ScheduleRecord]:
        rows = await self._fetch("schedule_list", {"include_deleted": include_deleted})
        return [
            ScheduleRecord(**r, problem=schedule_problem(r["schedule"], r["timezone"]))
            for r in rows
        ]

    async def set_schedule_enabled(self, schedule_id: uuid.UUID, enabled: bool) -> bool:
        """Pause or resume; resuming recomputes the next fire time from now (no catch-up)."""
        next_run_at = None
        if enabled:
            rows = await self._fetch("schedule_get", {"id": schedule_id})
            if not rows:
                return False
            next_run_at = next_fire(rows[0]["schedule"], rows[0]["timezone"], await self._db_now())
        rows = await self._fetch(
            "schedule_set_enabled",
            {"id": schedule_id, "enabled": enabled, "next_run_at": next_run_at},
        )
        return bool(rows)

    async def delete_schedule(self, schedule_id: uuid.UUID) -> bool:
        return bool(await self._fetch("schedule_delete", {"id": schedule_id}))

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
                await cur.execute(
                    self.q["leader_lock"], {"key": lock_key("schedules", self.schema)}
                )
                lock = await cur.fetchone()
                if not lock or not lock["locked"]:
                    return []
                db_now: datetime = lock["db_now"]
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
            raise StoreError(f"schedule tick failed: {type(exc).__name__}: {exc}") from exc
        return fired

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
                    await cur.execute(
                        self.q["leader_lock"], {"key": lock_key("retention", self.schema)}
                    )
                    lock = await cur.fetchone()
                    if not lock or not lock["locked"]:
                        return deleted
                    await cur.execute(self.q["retention_delete"], params)
                    count = len(await cur.fetchall())
                deleted += count
                if count < batch:
                    return deleted
        except psycopg.Error as exc:
            raise StoreError(f"retention failed: {type(exc).__name__}: {exc}") from exc
