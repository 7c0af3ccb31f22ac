"""The rows :class:`~workfleet.testing.MemoryStore` holds: runs and registry entries."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from workfleet.models import RegistryEntry, RunRecord, RunStatus


@dataclass
class StoredRun:
    """One ``workflow_run`` row; ``seq`` is the insertion order, the fake's tie-break."""

    id: uuid.UUID
    type: str
    payload: Any
    status: RunStatus
    priority: int
    run_at: datetime
    idempotency_key: str | None
    attempt: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    seq: int
    leased_by: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    result: Any = None
    deleted_at: datetime | None = None
    lease_token: int | None = None
    wait_kind: str | None = None  # a waiting workflow's wait (migration 0006)
    parent_id: uuid.UUID | None = None  # the workflow that started this run as a child

    def record(self) -> RunRecord:
        return RunRecord(
            id=self.id,
            type=self.type,
            payload=copy.deepcopy(self.payload),
            status=self.status,
            priority=self.priority,
            run_at=self.run_at,
            idempotency_key=self.idempotency_key,
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            leased_by=self.leased_by,
            lease_until=self.lease_until,
            last_error=self.last_error,
            result=copy.deepcopy(self.result),
            created_at=self.created_at,
            updated_at=self.updated_at,
            deleted_at=self.deleted_at,
        )


@dataclass(frozen=True, slots=True)
class RegistryRow:
    """One ``workflow_registry`` row as the fake holds it (its ``id`` is not modelled)."""

    workflow_name: str
    runtime: str
    is_enabled: bool
    description: str | None
    created_at: datetime
    updated_at: datetime
    intent_type: str = "workflow"
    deleted_at: datetime | None = None


def registered(old: RegistryRow | None, entry: RegistryEntry, now: datetime) -> RegistryRow:
    """The row ``upsert_registry`` leaves for ``entry``: a new row is enabled; a live row keeps
    its ``is_enabled`` (and its description when the entry has none); a soft-deleted row comes
    back as a new registration would be."""
    if old is None:
        return RegistryRow(entry.workflow_name, entry.runtime, True, entry.description, now, now)
    if old.deleted_at is not None:
        return replace(
            old,
            runtime=entry.runtime,
            description=entry.description,
            is_enabled=True,
            deleted_at=None,
            updated_at=now,
        )
    description = old.description if entry.description is None else entry.description
    return replace(old, runtime=entry.runtime, description=description, updated_at=now)
