"""An in-memory :class:`~workfleet.checkpoints.WorkflowStore` beside a :class:`MemoryStore`.

It reproduces ``db/sql/workflows.sql`` and migration 0006's triggers on the fake's rows: the
same fencing (lease tokens), mailbox order, idempotent children, suspend rule and wake-ups (a
signal for a waited name, the last awaited child finishing, a cancelled parent's children).
The contract suite (``tests/contract/test_workflow_store.py``) runs one set of assertions
against this class and PostgreSQL. ``transact`` hands the function ``None``: there is no
connection to write through in memory.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

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
from workfleet.errors import StoreDataError
from workfleet.models import EventType, Lease, NewRun, RunStatus
from workfleet.testing.memory_store import MemoryStore
from workfleet.testing.rows import StoredRun

_OPEN = (RunStatus.PENDING, RunStatus.LEASED)


@dataclass
class _Signal:
    id: int
    run_id: uuid.UUID
    name: str
    payload: Any
    key: str | None
    created_at: datetime
    consumed_at: datetime | None = None
    consumed_by: str | None = None


class MemoryWorkflowStore:
    """Workflow checkpoints over the runs of ``runs`` (use one event loop, as MemoryStore)."""

    def __init__(self, runs: MemoryStore) -> None:
        self.runs = runs
        self._steps: dict[uuid.UUID, dict[str, StepRecord]] = {}
        self._signals: list[_Signal] = []
        self._waits: dict[uuid.UUID, list[WaitRecord]] = {}
        runs.status_listeners.append(self._status_changed)

    # --- shared pieces ----------------------------------------------------------------------

    def _row(self, run_id: uuid.UUID) -> StoredRun | None:
        return self.runs._runs.get(run_id)

    def _fence(self, worker_id: str, lease: Lease) -> StoredRun:
        row = self._row(lease.run_id)
        if row is None or not self.runs._held(row, worker_id, lease.token):
            raise LeaseLostError(lease.run_id, None if row is None else row.status)
        return row

    def _event(self, run_id: uuid.UUID, kind: EventType, data: Any) -> None:
        self.runs._event(run_id, kind, data, self.runs.clock.now())

    def _put(self, run_id: uuid.UUID, c: Checkpoint, output: Any, token: int | None) -> None:
        now = self.runs.clock.now()
        steps = self._steps.setdefault(run_id, {})
        old = steps.get(c.key)
        finished = now if c.status.is_final else None
        steps[c.key] = StepRecord(
            c.key,
            c.name,
            c.kind,
            c.status,
            copy.deepcopy(output),
            c.error,
            c.attempts,
            c.wake_at,
            old.started_at if old is not None else now,
            finished,
        )
        del token  # the fake keeps no per-step token: nothing reads it

    def _wake(self, row: StoredRun) -> None:
        """workfleet_wake(): a waiting run becomes runnable now."""
        if row.status is RunStatus.PENDING and row.wait_kind is not None:
            row.run_at = row.updated_at = self.runs.clock.now()
            row.wait_kind = None
            self._waits.pop(row.id, None)

    def _status_changed(self, row: StoredRun) -> None:
        if row.status is RunStatus.CANCELLED:
            for child in list(self.runs._runs.values()):
                if child.parent_id == row.id and child.status in _OPEN:
                    self.runs.cancel_row(child)
        if row.parent_id is not None and row.status.is_terminal:
            waits = self._waits.get(row.parent_id, [])
            left = [w for w in waits if not (w.kind == "child" and w.target == str(row.id))]
            if len(left) < len(waits):
                self._waits[row.parent_id] = left
                parent = self._row(row.parent_id)
                if parent is not None and not any(w.kind == "child" for w in left):
                    self._wake(parent)

    # --- WorkflowStore ----------------------------------------------------------------------

    async def load_steps(self, run_id: uuid.UUID) -> list[StepRecord]:
        await asyncio.sleep(0)
        steps = self._steps.get(run_id, {}).values()
        return sorted(
            (replace(s, output=copy.deepcopy(s.output)) for s in steps),
            key=lambda s: (s.started_at, s.key),
        )

    async def checkpoint(self, worker_id: str, lease: Lease, checkpoint: Checkpoint) -> None:
        await asyncio.sleep(0)
        self._fence(worker_id, lease)
        output = None if checkpoint.output_json is None else json.loads(checkpoint.output_json)
        self._put(lease.run_id, checkpoint, output, lease.token)
        if checkpoint.event is not None:
            final_signal = checkpoint.kind is StepKind.SIGNAL and checkpoint.status.is_final
            kind = EventType.SIGNALLED if final_signal else EventType.STEP
            self._event(lease.run_id, kind, copy.deepcopy(checkpoint.event))

    async def consume_signal(
        self, worker_id: str, lease: Lease, checkpoint: Checkpoint, name: str
    ) -> SignalMessage | None:
        await asyncio.sleep(0)
        self._fence(worker_id, lease)
        for sig in self._signals:
            if sig.run_id == lease.run_id and sig.name == name and sig.consumed_at is None:
                now = self.runs.clock.now()
                sig.consumed_at, sig.consumed_by = now, checkpoint.key
                done = replace(checkpoint, status=StepStatus.SUCCEEDED, attempts=1)
                self._put(lease.run_id, done, sig.payload, lease.token)
                waited = round((now - sig.created_at).total_seconds(), 6)
                data: dict[str, Any] = {"key": checkpoint.key, "name": name, "kind": "signal"}
                data |= {"status": "succeeded", "signal": name, "signal_id": sig.id}
                self._event(lease.run_id, EventType.SIGNALLED, data | {"waited_seconds": waited})
                return SignalMessage(sig.id, name, copy.deepcopy(sig.payload), sig.created_at)
        return None

    async def start_children(
        self, worker_id: str, lease: Lease, checkpoint: Checkpoint, children: Sequence[NewChild]
    ) -> list[uuid.UUID]:
        await asyncio.sleep(0)
        self._fence(worker_id, lease)
        prefix = child_idempotency_key(lease.run_id, "")
        news = [
            NewRun(
                c.type,
                json.loads(c.payload_json),
                priority=c.priority,
                idempotency_key=prefix + c.key,
                max_attempts=c.max_attempts,
            )
            for c in children
        ]
        enqueued = await self.runs.enqueue_many(news)
        for e in enqueued:
            row = self._row(e.id)
            if row is not None and e.created:
                row.parent_id = lease.run_id
        ids = [e.id for e in enqueued]
        output = [
            {"id": str(i), "key": c.key, "type": c.type} for i, c in zip(ids, children, strict=True)
        ]
        self._put(lease.run_id, checkpoint, output, lease.token)
        data = {"key": checkpoint.key, "name": checkpoint.name, "kind": "children"}
        self._event(
            lease.run_id, EventType.STEP, data | {"status": "succeeded", "children": len(ids)}
        )
        return ids

    async def child_states(self, ids: Sequence[uuid.UUID]) -> list[ChildState]:
        await asyncio.sleep(0)
        out = []
        for i in ids:
            row = self._row(i)
            if row is None:
                out.append(
                    ChildState(i, "", RunStatus.CANCELLED, None, "the child run no longer exists")
                )
            elif row.deleted_at is not None and row.status in _OPEN:
                out.append(
                    ChildState(
                        i,
                        row.type,
                        RunStatus.CANCELLED,
                        None,
                        "the child run was deleted",
                        row.parent_id,
                    )
                )
            else:
                out.append(
                    ChildState(
                        i,
                        row.type,
                        row.status,
                        copy.deepcopy(row.result),
                        row.last_error,
                        row.parent_id,
                    )
                )
        return out

    async def suspend(self, worker_id: str, lease: Lease, suspension: Suspension) -> SuspendResult:
        await asyncio.sleep(0)
        try:
            row = self._fence(worker_id, lease)
        except LeaseLostError:
            return SuspendResult.LOST
        s, now = suspension, self.runs.clock.now()
        signal_there = any(
            g.run_id == lease.run_id and g.consumed_at is None and g.name in s.signals
            for g in self._signals
        )
        open_children = [c for c in s.children if self._open(c)]
        if s.wake_at <= now or signal_there or (s.children and not open_children):
            return SuspendResult.READY
        waits = [WaitRecord("signal", name, now) for name in s.signals]
        waits += [WaitRecord("child", str(c), now) for c in open_children]
        self._waits[lease.run_id] = waits
        for c in s.checkpoints:
            if c.key not in self._steps.get(lease.run_id, {}):
                self._put(lease.run_id, c, None, lease.token)
        self._event(lease.run_id, EventType.SUSPENDED, copy.deepcopy(s.event))
        row.status, row.run_at, row.wait_kind = RunStatus.PENDING, s.wake_at, s.kind
        row.leased_by = row.lease_until = None
        row.updated_at = now
        return SuspendResult.SUSPENDED

    def _open(self, child: uuid.UUID) -> bool:
        row = self._row(child)
        return row is not None and row.status in _OPEN and row.deleted_at is None

    async def transact(
        self, worker_id: str, lease: Lease, fn: TransactionFn, finish: Callable[[Any], Checkpoint]
    ) -> Any:
        await asyncio.sleep(0)
        self._fence(worker_id, lease)
        value = await fn(None)
        await self.checkpoint(worker_id, lease, finish(value))
        return value

    # --- WorkflowAdmin ----------------------------------------------------------------------

    async def send_signal(
        self, run_id: uuid.UUID, name: str, payload_json: str, idempotency_key: str | None
    ) -> SignalSent:
        await asyncio.sleep(0)
        row = self._row(run_id)
        if row is None:
            raise StoreDataError(f"send_signal failed: no run {run_id} (foreign key)")
        if idempotency_key is not None:
            for g in self._signals:
                if (g.run_id, g.name, g.key) == (run_id, name, idempotency_key):
                    return SignalSent(g.id, False)
        sig = _Signal(
            len(self._signals) + 1,
            run_id,
            name,
            json.loads(payload_json),
            idempotency_key,
            self.runs.clock.now(),
        )
        self._signals.append(sig)
        if any(w.kind == "signal" and w.target == name for w in self._waits.get(run_id, [])):
            self._wake(row)
        return SignalSent(sig.id, True)

    async def resume(self, run_id: uuid.UUID) -> int | None:
        await asyncio.sleep(0)
        row = self._row(run_id)
        if row is None or row.status is not RunStatus.FAILED or row.deleted_at is not None:
            return None
        steps = self._steps.get(run_id, {})
        dropped = sorted(k for k, s in steps.items() if s.status is StepStatus.FAILED)
        for key in dropped:
            del steps[key]
        now = self.runs.clock.now()
        row.status, row.attempt, row.run_at, row.wait_kind = RunStatus.PENDING, 0, now, None
        row.leased_by = row.lease_until = None
        row.updated_at = now
        self._event(run_id, EventType.RESUMED, {"steps_reset": dropped})
        return len(dropped)

    async def signals(self, run_id: uuid.UUID, limit: int = 100) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        rows = [g for g in self._signals if g.run_id == run_id][:limit]
        return [
            {
                "id": g.id,
                "name": g.name,
                "payload": copy.deepcopy(g.payload),
                "idempotency_key": g.key,
                "created_at": g.created_at,
                "consumed_at": g.consumed_at,
                "consumed_by": g.consumed_by,
            }
            for g in rows
        ]

    async def children(self, run_id: uuid.UUID, limit: int = 100) -> list[ChildState]:
        await asyncio.sleep(0)
        rows = [r for r in self.runs._runs.values() if r.parent_id == run_id]
        rows.sort(key=lambda r: (r.created_at, r.id.int))
        return [
            ChildState(r.id, r.type, r.status, copy.deepcopy(r.result), r.last_error, r.parent_id)
            for r in rows[:limit]
        ]

    async def waits(self, run_id: uuid.UUID, limit: int = 100) -> list[WaitRecord]:
        await asyncio.sleep(0)
        return sorted(self._waits.get(run_id, []), key=lambda w: (w.kind, w.target))[:limit]
