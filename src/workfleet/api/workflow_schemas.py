"""The bodies of the durable-workflow routes (``/workflows/{id}/steps``, ``/signals``,
``/children``), in the words of their tables (``workflow_step``, ``workflow_signal``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from workfleet.checkpoints import ChildState, StepRecord
from workfleet.models import RunStatus


class WorkflowStep(BaseModel):
    """One checkpoint: ``kind`` step, sleep, signal, children, gather, value or patches;
    ``status`` succeeded, failed, waiting or retrying (``wake_at``: its end, timeout or next
    try)."""

    key: str
    name: str
    kind: str
    status: str
    attempts: int
    error: str | None
    output: Any
    wake_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, s: StepRecord) -> WorkflowStep:
        return cls(
            key=s.key,
            name=s.name,
            kind=str(s.kind),
            status=str(s.status),
            attempts=s.attempts,
            error=s.error,
            output=s.output,
            wake_at=s.wake_at,
            started_at=s.started_at,
            finished_at=s.finished_at,
        )


class StepList(BaseModel):
    steps: list[WorkflowStep]
    limit: int


class WorkflowSignal(BaseModel):
    """A signal in a run's mailbox; ``consumed_by`` is the wait (step key) that took it."""

    id: int
    name: str
    payload: Any
    idempotency_key: str | None
    created_at: datetime
    consumed_at: datetime | None
    consumed_by: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> WorkflowSignal:
        return cls(**{k: row[k] for k in cls.model_fields})


class SignalList(BaseModel):
    signals: list[WorkflowSignal]
    waiting_for: list[str] = Field(
        description="what the run waits for now: signal:<name> or child:<run id>"
    )
    limit: int


class SendSignal(BaseModel):
    """``POST /workflows/{id}/signals``."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=255, examples=["warehouse.ready"])
    payload: Any = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=1000)


class SignalSentBody(BaseModel):
    run_id: uuid.UUID
    signal_id: int
    duplicate: bool = Field(description="true when the idempotency key was seen: nothing added")


class WorkflowChild(BaseModel):
    id: uuid.UUID
    type: str
    status: RunStatus
    result: Any
    error: str | None

    @classmethod
    def of(cls, c: ChildState) -> WorkflowChild:
        return cls(id=c.id, type=c.type, status=c.status, result=c.result, error=c.error)


class ChildList(BaseModel):
    children: list[WorkflowChild]
    limit: int
