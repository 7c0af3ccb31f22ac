"""Public API examples that must type-check under ``mypy --strict`` (and run under pytest)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

import workfleet
from workfleet.models import NewRun
from workfleet.retry import ExponentialBackoff
from workfleet.testing import ManualClock, MemoryStore

plugin = workfleet.Plugin("typed", backoff=ExponentialBackoff(base=1, cap=60))


class Invoice(BaseModel):
    invoice_id: str
    amount: float


@plugin.executor("typed.invoice.v1", payload=Invoice, timeout=60, max_attempts=5)
async def invoice(run: workfleet.Run[Invoice]) -> dict[str, str]:
    if run.payload.amount < 0:
        raise workfleet.Fail("negative amount")
    if run.is_cancelled():
        raise workfleet.Snooze(after=30)
    await run.heartbeat(30)
    run.log.info("invoice", invoice_id=run.payload.invoice_id, attempt=run.attempt)
    return {"invoice_id": run.payload.invoice_id}


@plugin.executor("typed.notify.%")
def notify(run: workfleet.SyncRun[dict[str, str]]) -> None:
    if run.attempt < run.max_attempts:
        raise workfleet.Retry("not yet", after=5)
    run.heartbeat(10)


async def test_memory_store_accepts_public_types() -> None:
    store = MemoryStore(ManualClock())
    [result] = await store.enqueue_many([NewRun("typed.invoice.v1", {"invoice_id": "1"})])
    run_id: uuid.UUID = result.id
    record = await store.get(run_id)
    assert record is not None
    assert record.status is workfleet.RunStatus.PENDING
    assert [str(e.pattern) for e in plugin.executors] == ["typed.invoice.v1", "typed.notify.%"]
