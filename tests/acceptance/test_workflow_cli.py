"""Operating workflows from outside: the real CLI (signal, inspect, resume) and the client
(signal, steps, wait_result), against a worker on real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.acceptance.cli import cli_env, run_cli
from tests.integration.test_workflows import _q, _start
from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Plugin
from workfleet.client import Client
from workfleet.errors import RunNotFoundError
from workfleet.workflow import RetryPolicy, Workflow

plugin = Plugin("wfcli")
tries: Counter[str] = Counter()


async def pack(order: dict[str, Any]) -> str:
    tries[order["id"]] += 1
    if tries[order["id"]] == 1:
        raise ConnectionError("the packing service is down")
    return "packed"


@plugin.workflow("cli.order.v1")
async def order(wf: Workflow[Any]) -> dict[str, Any]:
    await wf.step("charge", _noop)
    ready = await wf.wait_signal("warehouse.ready")
    packed = await wf.step("pack", pack, wf.payload, retry=RetryPolicy(attempts=1))
    return {"ready": ready, "packed": packed}


async def _noop() -> str:
    return "charged"


async def _waiting(dsn: str, schema: str, run_id: uuid.UUID) -> None:
    await eventually(
        lambda: _q(
            dsn, schema, "SELECT 1 FROM workflow_run WHERE id = %s AND wait_kind = 'signal'", run_id
        )
    )


async def test_signal_inspect_and_resume_from_the_cli(pg_dsn: str, schema: str) -> None:
    env = cli_env(pg_dsn, schema)
    async with running_worker(pg_dsn, schema, plugin):
        waiting = await _start(pg_dsn, schema, "cli.order.v1", {"id": "W-1"})
        await _waiting(pg_dsn, schema, waiting)
        code, out, _ = await run_cli("inspect", str(waiting), env=env)
        assert code == 0
        assert "charge" in out and "signal:warehouse.ready" in out and "waiting" in out
        assert "waiting for: signal warehouse.ready" in out
        # pending until later: both sends find it open (the mailbox keeps the signal)
        [(run_id,)] = await _q(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload, run_at) VALUES "
            "('cli.order.v1', '{\"id\": \"A-1\"}', now() + interval '1 hour') RETURNING id",
        )
        for expected in ("sent to", "sent before"):
            code, out, err = await run_cli(
                "signal",
                str(run_id),
                "warehouse.ready",
                "--payload",
                '{"dock": 4}',
                "--key",
                "k1",
                env=env,
            )
            assert code == 0 and expected in out, err
        await _q(pg_dsn, schema, "UPDATE workflow_run SET run_at = now() WHERE id = %s", run_id)
        # the pack step fails once (one try allowed): the workflow fails, then resumes
        await eventually(
            lambda: _q(
                pg_dsn,
                schema,
                "SELECT 1 FROM workflow_run WHERE id = %s AND status = 'failed'",
                run_id,
            )
        )
        code, out, _ = await run_cli("inspect", "--json", str(run_id), env=env)
        detail = json.loads(out)
        steps = {s["key"]: s["status"] for s in detail["workflow"]["steps"]}
        assert steps == {
            "charge": "succeeded",
            "signal:warehouse.ready": "succeeded",
            "pack": "failed",
        }
        code, out, err = await run_cli("resume", str(run_id), env=env)
        assert code == 0, err
        rows = await eventually(
            lambda: _q(
                pg_dsn,
                schema,
                "SELECT result FROM workflow_run WHERE id = %s AND status = 'succeeded'",
                run_id,
            )
        )
        assert rows[0][0] == {"ready": {"dock": 4}, "packed": "packed"}
        code, _, err = await run_cli("resume", str(run_id), env=env)
        assert code == 1 and "only a failed run can resume" in err
        code, _, err = await run_cli("signal", str(run_id), "x", env=env)
        assert code == 1 and "succeeded" in err
        code, _, err = await run_cli("signal", str(uuid.uuid4()), "x", env=env)
        assert code == 1 and "no run" in err
        code, _, err = await run_cli("signal", str(run_id), "x", "--payload", "{nope", env=env)
        assert code == 2 and "not valid JSON" in err


async def test_the_client_signals_reads_steps_and_waits_for_the_result(
    pg_dsn: str, schema: str
) -> None:
    async with (
        running_worker(pg_dsn, schema, plugin),
        Client.connect(pg_dsn, schema=schema) as client,
    ):
        tries["B-1"] = 1  # the pack step passes at once
        run_id = await client.submit("cli.order.v1", {"id": "B-1"})
        with pytest.raises(TimeoutError):
            await client.wait_result(run_id, timeout=0.3)
        first = await client.signal(run_id, "warehouse.ready", {"dock": 1}, idempotency_key="x")
        assert (
            await client.signal(run_id, "warehouse.ready", {"dock": 2}, idempotency_key="x")
            == first
        )
        record = await client.wait_result(run_id, timeout=20)
        assert (record.status, record.result) == (
            "succeeded",
            {"ready": {"dock": 1}, "packed": "packed"},
        )
        assert [s.key for s in await client.steps(run_id)] == [
            "charge",
            "signal:warehouse.ready",
            "pack",
        ]
        with pytest.raises(ValueError, match="NUL"):
            await client.signal(run_id, "x", {"bad": "\x00"})
        with pytest.raises(RunNotFoundError):
            await client.signal(uuid.uuid4(), "x")
        with pytest.raises(RunNotFoundError):
            await client.wait_result(uuid.uuid4(), timeout=1)
