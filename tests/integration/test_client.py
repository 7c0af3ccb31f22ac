"""The producer client against PostgreSQL: submits, transactions, batches, lookups, repairs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from workfleet.client import Client
from workfleet.errors import ConfigError, StoreError
from workfleet.models import EventType, NewRun, RunStatus
from workfleet.settings import load_settings


@pytest.fixture
async def client(pg_pool: AsyncConnectionPool[Any], schema: str) -> Client:
    return Client(pg_pool, schema)


def _url(pg_dsn: str, **query: str) -> str:
    """``pg_dsn`` (key=value form) as a postgresql:// URL with extra query parameters."""
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    params = {"host": str(info.get("host", "")), "port": str(info.get("port", 5432)), **query}
    encoded = "&".join(f"{k}={quote(v, safe=',')}" for k, v in params.items())
    return f"postgresql://{info.get('user', 'postgres')}@/{info['dbname']}?{encoded}"


async def _count(pg_dsn: str, schema: str, table: str = "workflow_run") -> int:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


# --- submit -----------------------------------------------------------------------------------


async def test_submit_and_get(client: Client) -> None:
    run_id = await client.submit("billing.invoice.v1", {"invoice_id": "INV-1"}, priority=5)
    record = await client.get(run_id)
    assert record is not None
    assert (record.id, record.type, record.payload) == (
        run_id,
        "billing.invoice.v1",
        {"invoice_id": "INV-1"},
    )
    assert (record.status, record.priority, record.attempt, record.max_attempts) == (
        RunStatus.PENDING,
        5,
        0,
        3,
    )
    assert record.run_at == record.created_at, "no delay: runnable at once"
    assert [e.event_type for e in await client.events(run_id)] == [EventType.CREATED]


async def test_submit_defaults_and_overrides(client: Client) -> None:
    plain = await client.get(await client.submit("t.v1"))
    tuned = await client.get(await client.submit("t.v1", [1, 2], max_attempts=7, priority=1))
    assert plain is not None and tuned is not None
    assert (plain.payload, plain.priority, plain.idempotency_key) == ({}, 100, None)
    assert (tuned.payload, tuned.priority, tuned.max_attempts) == ([1, 2], 1, 7)


async def test_get_unknown_id(client: Client) -> None:
    assert await client.get(uuid.uuid4()) is None
    assert await client.events(uuid.uuid4()) == []


async def test_idempotency_returns_the_existing_id(client: Client) -> None:
    first = await client.submit("t.v1", {"n": 1}, idempotency_key="once")
    second = await client.submit("t.v1", {"n": 2}, idempotency_key="once")
    assert first == second
    [record] = await client.list()
    assert record.payload == {"n": 1}, "the duplicate changes nothing"
    assert [e.event_type for e in await client.events(first)] == [EventType.CREATED]


async def test_concurrent_duplicates_create_one_run(client: Client, pg_dsn: str) -> None:
    ids = await asyncio.gather(
        *(client.submit("t.v1", {"n": n}, idempotency_key="race") for n in range(8))
    )
    assert len(set(ids)) == 1
    assert await _count(pg_dsn, client.schema) == 1


async def test_delay_is_relative_to_the_database_clock(client: Client) -> None:
    record = await client.get(await client.submit("t.v1", delay=3600))
    assert record is not None
    # run_at and created_at come from the same statement's now()
    assert record.run_at - record.created_at == timedelta(hours=1)


async def test_run_at_is_stored_as_given(client: Client) -> None:
    at = datetime.now(UTC).replace(microsecond=123456) + timedelta(days=1)
    record = await client.get(await client.submit("t.v1", run_at=at))
    assert record is not None
    assert record.run_at == at
    assert record.run_at > record.created_at


# --- in the caller's transaction --------------------------------------------------------------


async def test_submit_rolls_back_and_commits_with_the_callers_writes(
    client: Client, pg_dsn: str, schema: str, run_sql: Any
) -> None:
    await run_sql("CREATE TABLE orders (id int PRIMARY KEY)")
    submitted: list[uuid.UUID] = []

    async def place_order(conn: psycopg.AsyncConnection[Any], order_id: int) -> None:
        """The caller's business transaction: the order and its invoice run, all or nothing."""
        async with conn.transaction():
            await conn.execute("INSERT INTO orders VALUES (%s)", [order_id])
            run_id = await client.submit("billing.invoice.v1", conn=conn, idempotency_key="o:1")
            submitted.append(run_id)
            assert await client.get(run_id) is None, "invisible to others before the commit"
            if order_id == 1:
                raise RuntimeError("order rejected")

    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        await conn.commit()
        with pytest.raises(RuntimeError, match="order rejected"):
            await place_order(conn, 1)
        # the key is free again: the rolled-back run never existed
        await place_order(conn, 2)

    lost, kept = submitted
    assert await client.get(lost) is None
    record = await client.get(kept)
    assert record is not None and record.idempotency_key == "o:1"
    assert await run_sql("SELECT id FROM orders") == [(2,)]


async def test_submit_many_inside_a_transaction(client: Client, pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        async with conn.transaction(force_rollback=True):
            results = await client.submit_many([NewRun("a.v1"), NewRun("b.v1")], conn=conn)
            assert [r.created for r in results] == [True, True]
        async with conn.transaction():
            committed = await client.submit_many([NewRun("c.v1")], conn=conn)
    assert [await client.get(r.id) for r in results] == [None, None]
    assert await client.get(committed[0].id) is not None


# --- submit_many ------------------------------------------------------------------------------


async def test_submit_many_keeps_order_and_reports_duplicates(client: Client) -> None:
    seen = await client.submit("t.v1", idempotency_key="seen")
    results = await client.submit_many(
        [
            NewRun("t.v1", {"i": 0}),
            NewRun("t.v1", {"i": 1}, idempotency_key="seen"),
            NewRun("u.v1", {"i": 2}, priority=3),
        ]
    )
    assert [r.created for r in results] == [True, False, True]
    assert results[1].id == seen
    records = [await client.get(r.id) for r in results]
    assert [(r.type, r.payload) for r in records if r is not None] == [
        ("t.v1", {"i": 0}),
        ("t.v1", {}),
        ("u.v1", {"i": 2}),
    ]
    # one statement: every row it created carries the same transaction timestamp
    created = [r for r, e in zip(records, results, strict=True) if e.created and r is not None]
    assert len({r.created_at for r in created}) == 1


async def test_submit_many_duplicate_key_within_the_batch(client: Client) -> None:
    first, second = await client.submit_many(
        [
            NewRun("t.v1", {"n": 1}, idempotency_key="k"),
            NewRun("t.v1", {"n": 2}, idempotency_key="k"),
        ]
    )
    assert (first.created, second.created) == (True, False)
    assert first.id == second.id


async def test_submit_many_of_nothing(client: Client) -> None:
    assert await client.submit_many([]) == []


async def test_one_bad_run_sends_none_of_the_batch(client: Client, pg_dsn: str) -> None:
    with pytest.raises(ValueError, match=r"bad\.v1: payload is not JSON"):
        await client.submit_many([NewRun("good.v1"), NewRun("bad.v1", {"x": {1, 2}})])
    assert await _count(pg_dsn, client.schema) == 0


# --- input checks, before the database --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": ""}, "non-empty"),
        ({"type": "   "}, "non-empty"),
        ({"delay": 1, "run_at": datetime.now(UTC)}, "not both"),
        ({"run_at": datetime(2030, 1, 1)}, "timezone-aware"),  # naive on purpose
        ({"delay": -1}, "delay"),
        ({"delay": float("inf")}, "delay"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"payload": {"x": object()}}, "not JSON-serialisable"),
        ({"payload": {"x": float("nan")}}, "not JSON-serialisable"),
        ({"payload": b"bytes"}, "not JSON-serialisable"),
        ({"type": "t." + "é" * 127}, "256 bytes long; the limit is 255 bytes"),
        ({"payload": {"s": "nul \x00 inside"}}, "NUL character"),
        ({"payload": ["lone \ud800"]}, "lone UTF-16 surrogate"),
        ({"type": "t.nul\x00.v1"}, "NUL character"),
        ({"idempotency_key": "k\x00"}, "NUL character"),
    ],
)
async def test_rejects_bad_input_before_touching_the_database(
    kwargs: dict[str, Any], message: str
) -> None:
    # a pool that was never opened: any database access would raise PoolClosed instead
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool("", open=False)
    unopened = Client(pool, "workflow")
    args = {"type": "t.v1", **kwargs}
    with pytest.raises(ValueError, match=message):
        await unopened.submit(**args)


async def test_payload_errors_do_not_quote_the_payload(client: Client) -> None:
    with pytest.raises(ValueError, match="JSON") as info:
        await client.submit("t.v1", {"card": "4111-1111", "bad": object()})
    assert "4111" not in str(info.value)


def test_schema_name_is_checked() -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool("", open=False)
    with pytest.raises(ValueError, match="schema"):
        Client(pool, "x" * 64)


# --- cancel and redrive -----------------------------------------------------------------------


async def test_cancel(client: Client, run_sql: Any) -> None:
    run_id = await client.submit("t.v1")
    assert await client.cancel(run_id)
    record = await client.get(run_id)
    assert record is not None and record.status is RunStatus.CANCELLED
    assert [e.event_type for e in await client.events(run_id)][-1] is EventType.CANCELLED
    assert not await client.cancel(run_id), "already cancelled"
    assert not await client.cancel(uuid.uuid4())
    done = await client.submit("t.v1")
    await run_sql("UPDATE workflow_run SET status = 'succeeded' WHERE id = %s", [done])
    assert not await client.cancel(done), "a finished run stays finished"


async def test_cancel_a_leased_run(client: Client, run_sql: Any) -> None:
    run_id = await client.submit("t.v1")
    await run_sql(
        "UPDATE workflow_run SET status = 'leased', leased_by = 'w1', "
        "lease_until = now() + interval '30 seconds' WHERE id = %s",
        [run_id],
    )
    assert await client.cancel(run_id)


async def test_redrive_a_failed_run(client: Client, run_sql: Any) -> None:
    failed = await client.submit("t.v1", delay=3600)
    await run_sql(
        "UPDATE workflow_run SET status = 'failed', attempt = 3, last_error = 'boom' WHERE id = %s",
        [failed],
    )
    assert await client.redrive(failed)
    record = await client.get(failed)
    assert record is not None
    assert (record.status, record.attempt) == (RunStatus.PENDING, 0)
    assert record.run_at <= record.updated_at, "runnable now, not at its old run_at"
    last = (await client.events(failed))[-1]
    assert last.event_type is EventType.RETRIED
    assert last.data["previous_error"] == "boom"
    assert not await client.redrive(failed), "pending now, nothing to redrive"
    assert not await client.redrive(uuid.uuid4())


async def test_redrive_leaves_other_states_alone(client: Client, run_sql: Any) -> None:
    cancelled = await client.submit("t.v1")
    await client.cancel(cancelled)
    done = await client.submit("t.v1")
    await run_sql("UPDATE workflow_run SET status = 'succeeded' WHERE id = %s", [done])
    assert not await client.redrive(cancelled)
    assert not await client.redrive(done)


# --- list -------------------------------------------------------------------------------------


async def test_list_filters(client: Client, run_sql: Any) -> None:
    invoice = await client.submit("billing.invoice.v1")
    payment = await client.submit("billing.payment.v1")
    video = await client.submit("media.video.v1")
    await client.cancel(payment)
    deleted = await client.submit("billing.old.v1")
    await run_sql("UPDATE workflow_run SET deleted_at = now() WHERE id = %s", [deleted])

    assert [r.id for r in await client.list()] == [video, payment, invoice], "newest first"
    assert [r.id for r in await client.list(type_prefix="billing.%")] == [payment, invoice]
    assert [r.id for r in await client.list(type_prefix="billing.invoice.v1")] == [invoice]
    assert [r.id for r in await client.list(status=RunStatus.CANCELLED)] == [payment]
    assert [r.id for r in await client.list(status="pending", type_prefix="billing.%")] == [invoice]
    assert [r.id for r in await client.list(limit=1)] == [video]
    assert await client.list(status=RunStatus.FAILED) == []


async def test_list_prefix_is_literal(client: Client) -> None:
    underscore = await client.submit("a_b.v1")
    await client.submit("aXb.v1")
    percent = await client.submit("50%.v1")
    await client.submit("50 and more.v1")
    hostile = await client.submit("x'; DROP TABLE workflow_run; --.v1")
    assert [r.id for r in await client.list(type_prefix="a_b.%")] == [underscore]
    assert [r.id for r in await client.list(type_prefix="50%.%")] == [percent]
    assert [r.id for r in await client.list(type_prefix="x'; DROP TABLE workflow_run; --%")] == [
        hostile
    ]
    assert len(await client.list()) == 5


async def test_list_rejects_bad_arguments(client: Client) -> None:
    with pytest.raises(ValueError, match="limit"):
        await client.list(limit=0)
    with pytest.raises(ValueError, match="bogus"):
        await client.list(status="bogus")
    with pytest.raises(ValueError, match="pattern"):
        await client.list(type_prefix="")


# --- connect ----------------------------------------------------------------------------------


async def _submitted_into(pg_dsn: str, schema: str, run_id: uuid.UUID) -> bool:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}.workflow_run WHERE id = %s").format(
                sql.Identifier(schema)
            ),
            [run_id],
        )
        return (await cur.fetchone()) == (1,)


@pytest.mark.parametrize("key", ["schema", "search_path"])
async def test_connect_with_the_schema_in_the_url(pg_dsn: str, schema: str, key: str) -> None:
    value = schema if key == "schema" else f"{schema},public"
    async with Client.connect(_url(pg_dsn, **{key: value})) as client:
        assert client.schema == schema
        run_id = await client.submit("t.v1")
    assert await _submitted_into(pg_dsn, schema, run_id)


async def test_connect_with_a_key_value_dsn(pg_dsn: str, schema: str) -> None:
    async with Client.connect(f"{pg_dsn} schema={schema}") as client:
        run_id = await client.submit("t.v1")
    assert await _submitted_into(pg_dsn, schema, run_id)


async def test_connect_explicit_schema_wins(pg_dsn: str, schema: str) -> None:
    async with Client.connect(_url(pg_dsn, schema="elsewhere"), schema=schema) as client:
        assert client.schema == schema


async def test_connect_from_settings_and_environment(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _url(pg_dsn, schema=schema)
    async with Client.connect(settings=load_settings(database_url=url)) as client:
        assert client.schema == schema
    monkeypatch.delenv("WORKFLEET_SCHEMA", raising=False)
    monkeypatch.setenv("WORKFLEET_DATABASE_URL", url)
    async with Client.connect() as client:
        run_id = await client.submit("t.v1")
    assert await _submitted_into(pg_dsn, schema, run_id)


async def test_connect_without_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKFLEET_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="WORKFLEET_DATABASE_URL") as info:
        async with Client.connect():
            pass
    assert info.value.env_var == "WORKFLEET_DATABASE_URL"


async def test_connect_rejects_a_malformed_url_at_once() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        async with Client.connect("postgresql://u:hunter2@localhost/db?bogus=1"):
            pass


async def test_unreachable_database_names_no_password() -> None:
    settings = load_settings(database_url="postgresql://unused@localhost/db", connect_timeout=0.3)
    # port 1: nothing listens there, every connection attempt is refused
    with pytest.raises(StoreError, match="cannot connect") as info:
        async with Client.connect("postgresql://u:hunter2@127.0.0.1:1/db", settings=settings):
            pass
    assert "hunter2" not in str(info.value)
