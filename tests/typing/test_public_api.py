"""Public API examples that must type-check under ``mypy --strict`` (and run under pytest).

Functions whose names start with ``_`` are only type-checked: they need a database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from pydantic import BaseModel

import workfleet
from workfleet.client import Client
from workfleet.discovery import Discovery, ExecutorRegistry, discover
from workfleet.models import Enqueued, NewRun, RunRecord
from workfleet.retry import Backoff, ConstantBackoff, ExponentialBackoff
from workfleet.testing import ManualClock, MemoryStore

plugin = workfleet.Plugin("typed", backoff=ExponentialBackoff(base=1, cap=60))


class Invoice(BaseModel):
    invoice_id: str
    amount: float


@plugin.executor("typed.invoice.v1", payload=Invoice, timeout=60, max_attempts=5)
async def invoice(run: workfleet.Run[Invoice]) -> dict[str, str]:
    """Generate an invoice."""
    if run.payload.amount < 0:
        raise workfleet.Fail("negative amount")
    if run.is_cancelled():
        raise workfleet.Snooze(after=30)
    await run.heartbeat(30)
    if not run.is_last_attempt and run.attempt == 1:
        raise workfleet.Retry("gateway busy", after=5)
    run.log.info("invoice", invoice_id=run.payload.invoice_id, attempt=run.attempt)
    return {"invoice_id": run.payload.invoice_id, "run": str(run.id)}


@plugin.executor("typed.notify.%", backoff=ConstantBackoff(2.0))
def notify(run: workfleet.SyncRun[dict[str, str]]) -> None:
    """Send a notification (sync: runs in a worker thread)."""
    channel: str = run.type.split(".")[2]
    if run.cancelled.is_set() or channel == "fax":
        raise workfleet.Fail(f"unsupported channel {channel}")
    run.heartbeat(10)


@dataclass(frozen=True)
class Linear:
    """A custom backoff: anything with ``delay(attempt) -> float`` is a :class:`Backoff`."""

    step: float

    def delay(self, attempt: int) -> float:
        return self.step * attempt


linear: Backoff = Linear(5.0)


@plugin.executor("typed.report.v1", backoff=linear)
async def report(run: workfleet.Run[object]) -> None: ...


async def _producer(dsn: str) -> list[RunRecord]:
    async with Client.connect(dsn, schema="workflow") as client:
        run_id: uuid.UUID = await client.submit(
            "typed.invoice.v1",
            {"invoice_id": "INV-1", "amount": 10.0},
            idempotency_key="invoice:INV-1",
            priority=10,
            delay=30,
        )
        await client.submit("typed.notify.email.v1", run_at=datetime.now(UTC) + timedelta(1))
        async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
            await client.submit("typed.report.v1", conn=conn)
        batch: list[Enqueued] = await client.submit_many([NewRun("typed.report.v1")])
        assert all(e.created for e in batch)
        record: RunRecord | None = await client.get(run_id)
        assert record is None or record.status is workfleet.RunStatus.PENDING
        cancelled: bool = await client.cancel(run_id)
        redriven: bool = await client.redrive(run_id)
        assert cancelled or redriven or not (await client.events(run_id))
        return await client.list(status="failed", type_prefix="typed.%", limit=10)


def _operator() -> tuple[ExecutorRegistry, list[str]]:
    discovery: Discovery = discover(skip_broken=True, extra=[plugin])
    problems = [f"{f.plugin.describe()}: {f.error}" for f in discovery.failures]
    return discovery.registry, problems


def test_plugin_registers_typed_executors() -> None:
    assert [str(e.pattern) for e in plugin.executors] == [
        "typed.invoice.v1",
        "typed.notify.%",
        "typed.report.v1",
    ]
    registry = ExecutorRegistry.from_plugins([plugin])
    resolved = registry.resolve("typed.notify.sms.v1")
    assert resolved is not None and resolved.fn is notify and not resolved.is_async
    spec = registry.resolve("typed.invoice.v1")
    assert spec is not None
    assert (spec.payload_model, spec.max_attempts, spec.description) == (
        Invoice,
        5,
        "Generate an invoice.",
    )
    assert spec.backoff is not None and spec.backoff.delay(1) >= 1.0, "the plugin's default"
    report_spec = registry.resolve("typed.report.v1")
    assert report_spec is not None and report_spec.backoff is linear


async def test_memory_store_accepts_public_types() -> None:
    store = MemoryStore(ManualClock())
    [result] = await store.enqueue_many([NewRun("typed.invoice.v1", {"invoice_id": "1"})])
    run_id: uuid.UUID = result.id
    record = await store.get(run_id)
    assert record is not None
    assert record.status is workfleet.RunStatus.PENDING
