"""Test helpers for workfleet and for plugin authors' own tests.

:class:`MemoryStore` is an in-memory :class:`workfleet.store.RunQueue` with the PostgreSQL
store's semantics (eligibility, ordering, fencing, events, idempotency), so the runtime can be
driven fast and deterministically without a database; :class:`ManualClock` moves its time by
hand. The contract suite (``tests/contract``) runs the same assertions against both stores.

    clock = ManualClock()
    store = MemoryStore(clock)
    [run] = await store.enqueue_many([NewRun("billing.invoice.v1", {"invoice_id": "1"})])
    clock.advance(60)

:func:`run_executor` runs one executor with a payload, as a worker would, and returns what it
amounts to (:class:`ExecutorResult`), for a plugin's own tests.
"""

from __future__ import annotations

from workfleet.testing.clock import Clock, ManualClock, SystemClock
from workfleet.testing.executors import ExecutorResult, run_executor
from workfleet.testing.memory_store import MemoryStore
from workfleet.testing.memory_workflows import MemoryWorkflowStore
from workfleet.testing.observer import RecordingObserver
from workfleet.testing.pgvalues import like
from workfleet.testing.rows import RegistryRow

__all__ = [
    "Clock",
    "ExecutorResult",
    "ManualClock",
    "MemoryStore",
    "MemoryWorkflowStore",
    "RecordingObserver",
    "RegistryRow",
    "SystemClock",
    "like",
    "run_executor",
]
