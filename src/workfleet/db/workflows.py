"""Durable workflows on PostgreSQL: :class:`PgWorkflowStore` (``sql/workflows.sql``).

Implements :class:`workfleet.checkpoints.WorkflowStore` (what an execution writes, fenced) and
:class:`workfleet.checkpoints.WorkflowAdmin` (signals, resume, reads for the CLI and client).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from workfleet.checkpoints import (
    Checkpoint,
    ChildState,
    LeaseLostError,
    NewChild,
    SignalMessage,
    SignalSent,
    StepKind,
    StepRecord,
    StepStatus,
    SuspendResult,
    Suspension,
    TransactionFn,
    WaitRecord,
    child_idempotency_key,
)
from workfleet.db.queries import QueryStore, store_error
from workfleet.models import Lease, RunStatus

Row = dict[str, Any]


def _step(row: Row) -> StepRecord:
    return StepRecord(
        key=row["key"],
        name=row["name"],
        kind=StepKind(row["kind"]),
        status=StepStatus(row["status"]),
        output=row["output"],
        error=row["error"],
        attempts=row["attempts"],
        wake_at=row["wake_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _child(row: Row) -> ChildState:
    return ChildState(
        id=row["id"] if row.get("id") is not None else row["wanted"],
        type=row["type"] or "",
        status=RunStatus(row["status"]),
        result=row["result"],
        error=row["error"],
        parent_id=row["parent_id"],
    )


def _fence(lease: Lease, worker_id: str) -> dict[str, Any]:
    return {"run_id": lease.run_id, "token": lease.token, "worker_id": worker_id}


def _checkpoint_params(checkpoint: Checkpoint) -> dict[str, Any]:
    c = checkpoint
    event_type = "signalled" if c.kind is StepKind.SIGNAL and c.status.is_final else "step"
    return {
        "key": c.key,
        "name": c.name,
        "kind": str(c.kind),
        "status": str(c.status),
        "output": c.output_json,
        "error": c.error,
        "attempts": c.attempts,
        "wake_at": c.wake_at,
        "event": None if c.event is None else json.dumps(c.event),
        "event_type": event_type,
    }


def _held(row: Row, lease: Lease) -> None:
    if not row["held"]:
        status = None if row["status"] is None else RunStatus(row["status"])
        raise LeaseLostError(lease.run_id, status)


class PgWorkflowStore(QueryStore):
    """Checkpoints, signals, children and suspensions of workflow runs, in PostgreSQL."""

    # --- an execution's writes (fenced) ----------------------------------------------------

    async def load_steps(self, run_id: uuid.UUID) -> list[StepRecord]:
        return [_step(r) for r in await self._fetch("wf_load_steps", {"run_id": run_id})]

    async def checkpoint(self, worker_id: str, lease: Lease, checkpoint: Checkpoint) -> None:
        params = _fence(lease, worker_id) | _checkpoint_params(checkpoint)
        [row] = await self._fetch("wf_checkpoint", params)
        _held(row, lease)

    async def consume_signal(
        self, worker_id: str, lease: Lease, checkpoint: Checkpoint, name: str
    ) -> SignalMessage | None:
        params = _fence(lease, worker_id) | {"key": checkpoint.key, "name": name}
        [row] = await self._fetch("wf_consume_signal", params)
        _held(row, lease)
        if row["id"] is None:
            return None
        return SignalMessage(row["id"], name, row["payload"], row["created_at"])

    async def start_children(
        self, worker_id: str, lease: Lease, checkpoint: Checkpoint, children: Sequence[NewChild]
    ) -> list[uuid.UUID]:
        batch = [
            {
                "ord": i,
                "key": c.key,
                "type": c.type,
                "payload": c.payload_json,
                "priority": c.priority,
                "max_attempts": c.max_attempts,
            }
            for i, c in enumerate(children)
        ]
        params = _fence(lease, worker_id) | {
            "key": checkpoint.key,
            "name": checkpoint.name,
            "batch": json.dumps(batch),
            "prefix": child_idempotency_key(lease.run_id, ""),
        }
        rows = await self._fetch("wf_start_children", params)
        _held(rows[0], lease)
        return [r["id"] for r in rows]

    async def child_states(self, ids: Sequence[uuid.UUID]) -> list[ChildState]:
        rows = await self._fetch("wf_child_states", {"ids": list(ids)})
        return [_child(r) for r in rows]

    async def suspend(self, worker_id: str, lease: Lease, suspension: Suspension) -> SuspendResult:
        s = suspension
        params = _fence(lease, worker_id) | {
            "wake_at": s.wake_at,
            "kind": s.kind,
            "signals": list(s.signals),
            "children": list(s.children),
            "checkpoints": json.dumps([_wait_checkpoint(c) for c in s.checkpoints]),
            "event": json.dumps(s.event),
        }
        q = self.q
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(q["wf_suspend_lock"], params)
                if await cur.fetchone() is None:
                    return SuspendResult.LOST
                await cur.execute(q["wf_suspend_ready"], params)
                ready = await cur.fetchone()
                if ready is not None and ready["ready"]:
                    # rolling back drops the lock only: nothing was written
                    raise _Ready
                await cur.execute(q["wf_suspend_clear"], params)
                await cur.execute(q["wf_suspend_write"], params)
        except _Ready:
            return SuspendResult.READY
        except psycopg.Error as exc:
            raise store_error("wf_suspend", exc) from exc
        return SuspendResult.SUSPENDED

    async def transact(
        self, worker_id: str, lease: Lease, fn: TransactionFn, finish: Callable[[Any], Checkpoint]
    ) -> Any:
        fence = _fence(lease, worker_id)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(self.q["wf_transact_lock"], fence)
                if await cur.fetchone() is None:
                    raise LeaseLostError(lease.run_id)
                value = await fn(conn)
                params = fence | _checkpoint_params(finish(value))
                await cur.execute(self.q["wf_checkpoint"], params)
                return value
        except psycopg.Error as exc:
            raise store_error("wf_transact", exc) from exc

    # --- admin and reads ------------------------------------------------------------------

    async def send_signal(
        self, run_id: uuid.UUID, name: str, payload_json: str, idempotency_key: str | None
    ) -> SignalSent:
        params = {"run_id": run_id, "name": name, "payload": payload_json, "key": idempotency_key}
        [row] = await self._fetch("wf_send_signal", params)
        return SignalSent(row["id"], row["created"])

    async def resume(self, run_id: uuid.UUID) -> int | None:
        rows = await self._fetch("wf_resume", {"run_id": run_id})
        return None if not rows else int(rows[0]["reset"])

    async def signals(self, run_id: uuid.UUID, limit: int = 100) -> list[dict[str, Any]]:
        return await self._fetch("wf_signals", {"run_id": run_id, "limit": limit})

    async def children(self, run_id: uuid.UUID, limit: int = 100) -> list[ChildState]:
        rows = await self._fetch("wf_children", {"run_id": run_id, "limit": limit})
        return [_child(r) for r in rows]

    async def waits(self, run_id: uuid.UUID, limit: int = 100) -> list[WaitRecord]:
        rows = await self._fetch("wf_waits", {"run_id": run_id, "limit": limit})
        return [WaitRecord(r["kind"], r["target"], r["created_at"]) for r in rows]


class _Ready(Exception):  # noqa: N818 - control flow: roll the suspend's transaction back
    pass


def _wait_checkpoint(c: Checkpoint) -> dict[str, Any]:
    wake_at: datetime | None = c.wake_at
    return {
        "key": c.key,
        "name": c.name,
        "kind": str(c.kind),
        "status": str(c.status),
        "wake_at": None if wake_at is None else wake_at.isoformat(),
        "attempts": c.attempts,
    }
