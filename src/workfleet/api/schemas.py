"""The API's request and response bodies (pydantic), in simple-workflow's words where it has
them (``type``, ``payload``, ``priority``, ``idempotency_key``, ``max_attempts``,
``run_after``; a run reads as its ``workflow_run`` row).

Payloads are any JSON value PostgreSQL's ``jsonb`` stores: :func:`check_json` refuses, naming
the field, what it cannot (a NUL character, nesting deeper than :data:`MAX_DEPTH`) before
anything is sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from workfleet.models import Event, RunRecord, RunStatus
from workfleet.operations import BulkResult
from workfleet.store import PrefixStats, ScheduleRecord

INT4 = 2**31 - 1  # priority and max_attempts are int4 columns
MAX_DEPTH = 64  # deeper payloads are refused (jsonb and the parsers recurse)
MAX_KEY_CHARS = 1000  # the idempotency key's btree index refuses entries past about 2.7 KB


def check_json(value: Any, field: str) -> str | None:
    """Why ``value`` cannot be stored as jsonb (naming the path under ``field``), or None."""
    stack: list[tuple[Any, str, int]] = [(value, field, 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"{path}: nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, str):
            if "\x00" in item:
                return f"{path}: contains a NUL character (\\u0000), which jsonb cannot store"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if "\x00" in key:
                    return f"{path}: a key contains a NUL character (\\u0000)"
                stack.append((sub, f"{path}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(item))
    return None


def check_text(value: str | None, field: str) -> str | None:
    if value is not None and "\x00" in value:
        return f"{field}: contains a NUL character, which PostgreSQL text cannot store"
    return None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateWorkflow(_Body):
    """``POST /workflows``: a run to record. Absent fields take the table's defaults."""

    type: str = Field(min_length=1, max_length=255, examples=["billing.invoice.v1"])
    payload: Any = Field(default_factory=dict, examples=[{"invoice_id": "INV-001"}])
    priority: int | None = Field(default=None, ge=-INT4 - 1, le=INT4, description="lower first")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_KEY_CHARS)
    max_attempts: int | None = Field(default=None, ge=1, le=INT4)
    run_after: AwareDatetime | None = Field(default=None, description="not before this time")


class Created(BaseModel):
    id: uuid.UUID


class Run(BaseModel):
    """A ``workflow_run`` row."""

    id: uuid.UUID
    type: str
    payload: Any
    status: RunStatus
    priority: int
    run_at: datetime
    idempotency_key: str | None
    attempt: int
    max_attempts: int
    leased_by: str | None
    lease_until: datetime | None
    last_error: str | None
    result: Any
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, record: RunRecord) -> Run:
        return cls(**{f: getattr(record, f) for f in cls.model_fields})


class RunList(BaseModel):
    """A page of runs, newest first. ``next_cursor`` (keyset paging) is null on the last page;
    pass it back as ``cursor``. With ``offset`` paging it is null and ``offset`` is echoed."""

    workflows: list[Run]
    limit: int
    offset: int | None = None
    next_cursor: str | None = None


class RunEvent(BaseModel):
    """A ``workflow_event`` row."""

    id: int
    workflow_id: uuid.UUID
    event_type: str
    data: Any
    created_at: datetime

    @classmethod
    def of(cls, event: Event) -> RunEvent:
        return cls(
            id=event.id,
            workflow_id=event.run_id,
            event_type=str(event.event_type),
            data=event.data,
            created_at=event.created_at,
        )


class EventList(BaseModel):
    events: list[RunEvent]


class ActionDone(BaseModel):
    id: uuid.UUID
    status: RunStatus


class RunFilter(_Body):
    """Which runs a bulk action selects (every field narrows; all are optional)."""

    types: list[str] = Field(default_factory=list, description="exact types or 'prefix.%'")
    statuses: list[RunStatus] = Field(default_factory=list)
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    payload: Any = Field(default=None, description="payload contains this JSON (jsonb @>)")
    error: str | None = Field(default=None, max_length=1000, description="in last_error")


class BulkRequest(_Body):
    """Exactly one of ``ids`` or ``filter``; at most ``limit`` runs, newest first."""

    ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)
    filter: RunFilter | None = None
    limit: int = Field(default=1000, ge=1, le=1000)
    dry_run: bool = False


class BulkReport(BaseModel):
    action: Literal["cancel", "redrive"]
    dry_run: bool
    selected: list[uuid.UUID]
    done: list[uuid.UUID]
    skipped: list[uuid.UUID]
    truncated: bool
    limit: int

    @classmethod
    def of(cls, result: BulkResult) -> BulkReport:
        return cls(
            action=result.action.value,
            dry_run=result.dry_run,
            selected=result.selected,
            done=result.done,
            skipped=result.skipped,
            truncated=result.truncated,
            limit=result.limit,
        )


class CreateSchedule(_Body):
    """``POST /schedules``: fire a run of ``type`` at every time of ``schedule`` (cron)."""

    type: str = Field(min_length=1, max_length=255)
    schedule: str = Field(min_length=1, max_length=200, examples=["*/5 * * * *", "@daily"])
    timezone: str = Field(default="UTC", min_length=1, max_length=100)
    payload: Any = Field(default_factory=dict)
    priority: int = Field(default=100, ge=-INT4 - 1, le=INT4)
    max_attempts: int = Field(default=3, ge=1, le=INT4)


class Schedule(BaseModel):
    """A ``workflow_schedule`` row; ``problem`` says why workfleet cannot fire it."""

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
    problem: str | None

    @classmethod
    def of(cls, record: ScheduleRecord) -> Schedule:
        return cls(**{f: getattr(record, f) for f in cls.model_fields})


class ScheduleList(BaseModel):
    schedules: list[Schedule]


class Stats(BaseModel):
    """One type pattern's queue; counts stop at ``cap`` (``count == cap``: at least)."""

    prefix: str
    pending: int
    due: int
    leased: int
    oldest_pending_age_seconds: float
    succeeded_recent: int
    failed_recent: int

    @classmethod
    def of(cls, stats: PrefixStats) -> Stats:
        return cls(**{f: getattr(stats, f) for f in cls.model_fields})


class StatsReport(BaseModel):
    window_seconds: float
    cap: int
    prefixes: list[Stats]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool
