"""Rows inserted by hand with bad shapes: rejected by the schema with a clear error, or failed
by the worker with a clear last_error; the worker's loops never crash."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import BaseModel

from tests.integration.worker_harness import Running, running_worker
from tests.waiting import eventually
from workfleet import Plugin, Run

pytestmark = pytest.mark.postgres

plugin = Plugin("mal")


class Invoice(BaseModel):
    invoice_id: str
    amount: int


@plugin.executor("mal.model.v1", payload=Invoice)
async def modelled(run: Run[Invoice]) -> str:
    return run.payload.invoice_id


@plugin.executor("mal.raw.v1", max_attempts=1)
async def raw(run: Run[Any]) -> Any:
    return run.payload.get("x")  # assumes an object, as careless executors do


@plugin.executor("mal.size.v1")
async def size(run: Run[Any]) -> int:
    return len(json.dumps(run.payload))


async def _rows(dsn: str, schema: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(query.encode(), params or None)
        return await cur.fetchall() if cur.description else []


def _healthy(w: Running) -> None:
    engine = w.worker.engine
    assert engine is not None
    assert not any(t.done() for t in (*engine.loop_tasks, *engine.side_tasks))
    assert w.worker.health.alive() == (True, "ok")


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        (
            "INSERT INTO workflow_run (type, payload) VALUES ('mal.raw.v1', NULL)",
            "NotNullViolation",
        ),
        ("INSERT INTO workflow_run (type) VALUES ('mal.raw.v1')", "NotNullViolation"),
        ("INSERT INTO workflow_run (type, payload) VALUES (NULL, '{}')", "NotNullViolation"),
        (
            "INSERT INTO workflow_run (type, payload, status) VALUES ('mal.raw.v1', '{}', 'done')",
            "CheckViolation",
        ),
        (
            "INSERT INTO workflow_run (type, payload) VALUES ('mal.raw.v1', '{oops')",
            "InvalidTextRepresentation",
        ),
        (
            "INSERT INTO workflow_run (type, payload, run_at) VALUES ('mal.raw.v1', '{}', NULL)",
            "NotNullViolation",
        ),
    ],
)
async def test_schema_rejects_malformed_rows(
    pg_dsn: str, schema: str, statement: str, error: str
) -> None:
    with pytest.raises(psycopg.Error) as caught:
        await _rows(pg_dsn, schema, statement)
    assert type(caught.value).__name__ == error


async def test_worker_survives_malformed_payloads(pg_dsn: str, schema: str) -> None:
    huge = json.dumps({"blob": "x" * (10 * 1024 * 1024)})
    cases = {
        # payload shape wrong for the model: failed at once, field names only
        "model-null": ("mal.model.v1", "null"),
        "model-list": ("mal.model.v1", "[1, 2]"),
        "model-string": ("mal.model.v1", '"INV-1"'),
        "model-types": ("mal.model.v1", '{"invoice_id": 5, "amount": "lots"}'),
        # no model: the executor's own error, as one line
        "raw-null": ("mal.raw.v1", "null"),
        "raw-number": ("mal.raw.v1", "42"),
        # 10 MB: claimed, executed, finished
        "huge": ("mal.size.v1", huge),
    }
    ids: dict[str, Any] = {}
    async with running_worker(pg_dsn, schema, plugin, poll_interval=0.3) as w:
        for name, (run_type, payload) in cases.items():
            [(ids[name],)] = await _rows(
                pg_dsn,
                schema,
                "INSERT INTO workflow_run (type, payload) VALUES (%s, %s::jsonb) RETURNING id",
                run_type,
                payload,
            )
        # attempts already beyond max_attempts (hand-edited row): one try, then terminal
        [(ids["spent"],)] = await _rows(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload, attempt, max_attempts) "
            "VALUES ('mal.raw.v1', 'null', 7, 3) RETURNING id",
        )

        async def finished() -> bool:
            rows = await _rows(
                pg_dsn,
                schema,
                "SELECT count(*) FROM workflow_run WHERE status IN ('succeeded', 'failed')",
            )
            return rows == [(len(ids),)]

        await eventually(finished, 30)
        _healthy(w)
        # and it still runs ordinary work
        [(ok_id,)] = await _rows(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload) "
            'VALUES (\'mal.model.v1\', \'{"invoice_id": "INV-9", "amount": 3}\') RETURNING id',
        )

        async def ok() -> bool:
            rows = await _rows(
                pg_dsn, schema, "SELECT status FROM workflow_run WHERE id = %s", ok_id
            )
            return rows == [("succeeded",)]

        await eventually(ok, 15)
        _healthy(w)
    outcome = {
        name: tuple(row)
        for name, run_id in ids.items()
        for row in await _rows(
            pg_dsn,
            schema,
            "SELECT status, last_error, result FROM workflow_run WHERE id = %s",
            run_id,
        )
    }
    for name in ("model-null", "model-list", "model-string", "model-types"):
        status, error, _ = outcome[name]
        assert status == "failed" and error.startswith("invalid payload: "), (name, error)
        assert "INV-1" not in error and "lots" not in error, "validation errors name no values"
    assert outcome["raw-null"][:2] == (
        "failed",
        "AttributeError: 'NoneType' object has no attribute 'get'",
    )
    assert outcome["raw-number"][:2] == (
        "failed",
        "AttributeError: 'int' object has no attribute 'get'",
    )
    assert outcome["spent"][0] == "failed"
    assert outcome["huge"] == ("succeeded", None, len(huge))


async def test_leased_row_without_a_lease_is_recovered(pg_dsn: str, schema: str) -> None:
    [(run_id,)] = await _rows(
        pg_dsn,
        schema,
        "INSERT INTO workflow_run (type, payload, status, leased_by) "
        "VALUES ('mal.size.v1', '{}', 'leased', 'ghost') RETURNING id",
    )
    async with running_worker(pg_dsn, schema, plugin, poll_interval=0.3, sweep_interval=0.2):

        async def recovered() -> bool:
            rows = await _rows(
                pg_dsn, schema, "SELECT status FROM workflow_run WHERE id = %s", run_id
            )
            return rows == [("succeeded",)]

        await eventually(recovered, 5)
