"""The producer client against PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from workfleet.client import Client
from workfleet.models import NewRun, RunStatus


@pytest.fixture
async def client(pg_pool: Any, schema: str) -> Client:
    return Client(pg_pool, schema)


async def test_submit_and_get(client: Client) -> None:
    run_id = await client.submit("billing.invoice.v1", {"invoice_id": "INV-1"}, priority=5)
    record = await client.get(run_id)
    assert record is not None
    assert (record.type, record.payload, record.priority) == (
        "billing.invoice.v1",
        {"invoice_id": "INV-1"},
        5,
    )
    assert [str(e.event_type) for e in await client.events(run_id)] == ["created"]


async def test_idempotency_returns_existing_id(client: Client) -> None:
    first = await client.submit("t.v1", {"n": 1}, idempotency_key="once")
    second = await client.submit("t.v1", {"n": 2}, idempotency_key="once")
    assert first == second
    assert len(await client.list_runs()) == 1


async def test_submit_inside_callers_transaction(client: Client, pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        async with conn.transaction(force_rollback=True):
            rolled_back = await client.submit("t.v1", {"n": 1}, conn=conn)
        async with conn.transaction():
            committed = await client.submit("t.v1", {"n": 2}, conn=conn)
    assert await client.get(rolled_back) is None
    assert await client.get(committed) is not None


async def test_submit_many_in_order(client: Client) -> None:
    await client.submit("t.v1", idempotency_key="seen")
    results = await client.submit_many(
        [
            NewRun("t.v1", {"i": 0}),
            NewRun("t.v1", {"i": 1}, idempotency_key="seen"),
            NewRun("t.v1", {"i": 2}),
        ]
    )
    assert [r.created for r in results] == [True, False, True]
    payloads = [(await client.get(r.id)).payload for r in results]  # type: ignore[union-attr]
    assert payloads[0] == {"i": 0} and payloads[2] == {"i": 2}


async def test_delay_and_run_at(client: Client) -> None:
    delayed = await client.submit("t.v1", delay=3600)
    at = datetime.now(UTC) + timedelta(days=1)
    scheduled = await client.submit("t.v1", run_at=at)
    d = await client.get(delayed)
    s = await client.get(scheduled)
    assert d is not None and s is not None
    assert d.run_at > d.created_at + timedelta(minutes=59)
    assert abs((s.run_at - at).total_seconds()) < 0.01


async def test_rejects_bad_input_before_the_database(client: Client) -> None:
    with pytest.raises(ValueError, match="not both"):
        await client.submit("t.v1", delay=1, run_at=datetime.now(UTC))
    with pytest.raises(ValueError, match="JSON"):
        await client.submit("t.v1", {"x": object()})
    with pytest.raises(ValueError, match="JSON"):
        await client.submit("t.v1", {"x": float("nan")})
    with pytest.raises(ValueError, match="empty"):
        await client.submit(" ")
    assert await client.list_runs() == []


async def test_cancel_and_redrive(client: Client, run_sql: Any) -> None:
    run_id = await client.submit("t.v1")
    assert await client.cancel(run_id)
    assert not await client.cancel(run_id)
    failed = await client.submit("t.v1")
    await run_sql("UPDATE workflow_run SET status = 'failed', attempt = 3 WHERE id = %s", [failed])
    assert await client.redrive(failed)
    record = await client.get(failed)
    assert record is not None
    assert (record.status, record.attempt) == (RunStatus.PENDING, 0)
    assert not await client.redrive(uuid.uuid4())


async def test_list_filters_by_prefix_and_status(client: Client) -> None:
    a = await client.submit("billing.a.v1")
    await client.submit("media.b.v1")
    assert [r.id for r in await client.list_runs(type_prefix="billing.%")] == [a]
    assert await client.list_runs(status=RunStatus.FAILED) == []


async def test_connect_with_schema_in_url(pg_dsn: str, schema: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    host = info.get("host", "")
    url = (
        f"postgresql://{info.get('user', 'postgres')}@/{info['dbname']}"
        f"?host={host}&port={info.get('port', 5432)}&schema={schema}"
    )
    async with Client.connect(url) as client:
        assert client.schema == schema
        run_id = await client.submit("t.v1")
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}.workflow_run WHERE id = %s").format(
                sql.Identifier(schema)
            ),
            [run_id],
        )
        assert (await cur.fetchone()) == (1,)
