"""Injection attempts through prefixes, types, CLI arguments and payload keys are inert."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.acceptance.cli import cli_env, run_cli
from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Plugin, Run

pytestmark = pytest.mark.postgres

DROP = "'; DROP TABLE workflow_run; --"
EVIL_PREFIX = f"inj.{DROP}%"
EVIL_KEY = f'x"); DELETE FROM workflow_event; -- {DROP}'

plugin = Plugin("inj")


@plugin.executor("inj.%")
async def echo(run: Run[Any]) -> dict[str, Any]:
    return {"type": run.type, "keys": sorted(run.payload)}


@plugin.executor("exact.a_b.v1")
async def exact(run: Run[Any]) -> str:
    return "exact"


async def _rows(dsn: str, schema: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(query.encode(), params or None)
        return await cur.fetchall() if cur.description else []


async def _tables_intact(dsn: str, schema: str) -> None:
    found = await _rows(
        dsn,
        schema,
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
        schema,
        ["workflow_run", "workflow_event", "workflow_registry", "workflow_schedule"],
    )
    assert found == [(4,)]


async def test_sql_in_prefixes_types_and_payload_keys_is_inert(pg_dsn: str, schema: str) -> None:
    evil_type = f"inj.{DROP}tail"
    outside = "inj.plain.v1"  # not under the evil prefix: the loop must not claim it
    like_bait = "exact.aXb.v1"  # '_' in an exact type is literal, not a LIKE wildcard
    payload = json.dumps({EVIL_KEY: DROP, "a'b": 1})
    ids = {}
    for run_type in (evil_type, outside, like_bait, "exact.a_b.v1"):
        [(ids[run_type],)] = await _rows(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload) VALUES (%s, %s) RETURNING id",
            run_type,
            payload,
        )
    async with running_worker(
        pg_dsn, schema, plugin, prefixes=[EVIL_PREFIX, "exact.%"], poll_interval=0.3
    ):

        async def done() -> bool:
            rows = await _rows(
                pg_dsn,
                schema,
                "SELECT count(*) FROM workflow_run WHERE status = 'succeeded'",
            )
            return rows == [(2,)]

        await eventually(done, 15)
        await _tables_intact(pg_dsn, schema)
    status = dict(await _rows(pg_dsn, schema, "SELECT type, status FROM workflow_run"))
    assert status == {
        evil_type: "succeeded",
        outside: "pending",
        like_bait: "pending",
        "exact.a_b.v1": "succeeded",
    }
    [(result,)] = await _rows(
        pg_dsn, schema, "SELECT result FROM workflow_run WHERE id = %s", ids[evil_type]
    )
    assert result == {"type": evil_type, "keys": sorted([EVIL_KEY, "a'b"])}


async def test_huge_and_odd_types_do_not_break_inserts_or_notify(pg_dsn: str, schema: str) -> None:
    # NOTIFY payloads are limited to 8000 bytes and types to 255 bytes: odd types within the
    # limit run, a longer one is refused with a clear error, and a row from before the limit
    # (inserted with the trigger off, as an old database may hold) still runs
    odd = ["inj.new\nline", "inj.c:" + str(uuid.uuid4()), "inj.é✓", "inj." + "é" * 125]
    legacy = "inj." + "x" * 10_000
    async with running_worker(pg_dsn, schema, plugin, poll_interval=0.3):
        for run_type in odd:
            await _rows(
                pg_dsn,
                schema,
                "INSERT INTO workflow_run (type, payload) VALUES (%s, '{}')",
                run_type,
            )
        for too_long in ("inj." + "é" * 126, legacy):
            with pytest.raises(psycopg.errors.StringDataRightTruncation, match="255 bytes"):
                await _rows(
                    pg_dsn,
                    schema,
                    "INSERT INTO workflow_run (type, payload) VALUES (%s, '{}')",
                    too_long,
                )
        await _rows(
            pg_dsn, schema, "ALTER TABLE workflow_run DISABLE TRIGGER workfleet_run_inserted"
        )
        await _rows(
            pg_dsn, schema, "INSERT INTO workflow_run (type, payload) VALUES (%s, '{}')", legacy
        )
        await _rows(
            pg_dsn, schema, "ALTER TABLE workflow_run ENABLE TRIGGER workfleet_run_inserted"
        )

        async def done() -> bool:
            rows = await _rows(
                pg_dsn, schema, "SELECT count(*) FROM workflow_run WHERE status = 'succeeded'"
            )
            return rows == [(len(odd) + 1,)]

        await eventually(done, 15)


async def test_cli_arguments_are_inert(pg_dsn: str, schema: str) -> None:
    env = cli_env(pg_dsn, schema)
    evil_type = f"inj.{DROP}"
    code, out, err = await run_cli(
        "enqueue", evil_type, json.dumps({EVIL_KEY: DROP}), "--key", DROP, env=env
    )
    assert code == 0, err
    run_id = out.split()[0]
    code, out, err = await run_cli("inspect", run_id, "--json", env=env)
    assert code == 0, err
    shown = json.loads(out)["run"]
    assert (shown["type"], shown["payload"], shown["idempotency_key"]) == (
        evil_type,
        {EVIL_KEY: DROP},
        DROP,
    )
    # a run id, a schema and a prefix carrying SQL are refused with a clear error, no traceback
    for args, expected in (
        (("inspect", f"00000000-0000-0000-0000-000000000000{DROP}"), (1, 2)),
        (("cancel", DROP), (1, 2)),
        (("status", "--schema", f'x"; DROP SCHEMA {schema} CASCADE; --'), (2, 4)),
        (("worker", "--prefix", f"{DROP}%", "--no-http"), (2,)),
    ):
        code, out, err = await run_cli(*args, env=env, timeout=30)
        assert code in expected, (args, code, err)
        assert "Traceback" not in err and err.startswith("workfleet: error:"), err
    await _tables_intact(pg_dsn, schema)
    rows = await _rows(pg_dsn, schema, "SELECT count(*) FROM workflow_run")
    assert rows == [(1,)]
