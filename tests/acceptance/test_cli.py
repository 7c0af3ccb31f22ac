"""The CLI as a user meets it: exit codes, messages, and the operator commands."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.acceptance.cli import cli_env, run_cli

pytestmark = pytest.mark.acceptance


async def test_invalid_configuration_exits_2_naming_the_variable(pg_dsn: str, schema: str) -> None:
    env = cli_env(pg_dsn, schema, WORKFLEET_CONCURRENCY="lots")
    code, _, err = await run_cli("worker", env=env)
    assert code == 2
    assert "WORKFLEET_CONCURRENCY" in err


async def test_prefix_without_executor_exits_2(pg_dsn: str, schema: str) -> None:
    env = cli_env(pg_dsn, schema)
    code, _, err = await run_cli("worker", "--prefix", "x'; DROP TABLE workflow_run; --%", env=env)
    assert code == 2
    assert "matches no executor" in err
    assert "DROP TABLE" in err, "the pattern is reported back as data"


async def test_unmigrated_schema_exits_4(pg_dsn: str, schema_name: str) -> None:
    env = cli_env(pg_dsn, schema_name)
    code, _, err = await run_cli("status", env=env)
    assert code == 4
    assert "workfleet migrate" in err


async def test_unreachable_database_exits_3(schema_name: str) -> None:
    env = cli_env(
        "postgresql://nobody:s3cret-pw@127.0.0.1:1/none", schema_name, WORKFLEET_CONNECT_TIMEOUT="2"
    )
    code, out, err = await run_cli("check", env=env)
    assert code == 3
    assert "s3cret-pw" not in out + err


async def test_migrate_enqueue_inspect_cancel_redrive(pg_dsn: str, schema_name: str) -> None:
    env = cli_env(pg_dsn, schema_name)
    code, out, _ = await run_cli("migrate", env=env)
    assert code == 0 and "applied 0001" in out
    code, out, _ = await run_cli("migrate", env=env)
    assert code == 0 and "up to date" in out
    code, out, _ = await run_cli("check", env=env)
    assert code == 0 and "schema:" in out

    code, out, _ = await run_cli(
        "enqueue",
        "billing.invoice.v1",
        '{"invoice_id": "INV-9", "amount": 1, "customer_id": "C"}',
        "--key",
        "inv-9",
        env=env,
    )
    assert code == 0
    run_id = out.split()[0]
    code, out, _ = await run_cli("enqueue", "billing.invoice.v1", "{}", "--key", "inv-9", env=env)
    assert code == 0 and out.split()[0] == run_id and "existing run" in out

    code, out, _ = await run_cli("enqueue", "billing.invoice.v1", "{not json", env=env)
    assert code == 2 and "JSON" in _

    code, out, _ = await run_cli("inspect", run_id, "--json", env=env)
    assert code == 0
    doc = json.loads(out)
    assert doc["run"]["status"] == "pending"
    assert [e["event_type"] for e in doc["events"]] == ["created"]

    code, out, _ = await run_cli("status", "--json", env=env)
    assert code == 0
    status = json.loads(out)
    assert "billing.invoice.v1" in json.dumps(status["unserved_types"])
    assert "INV-9" not in out, "status never prints payloads"

    code, out, _ = await run_cli("cancel", run_id, env=env)
    assert code == 0
    code, _, err = await run_cli("cancel", run_id, env=env)
    assert code == 1 and "cancelled" in err
    code, _, err = await run_cli("redrive", run_id, env=env)
    assert code == 1 and "only failed runs" in err
    code, _, err = await run_cli("inspect", "not-a-uuid", env=env)
    assert code == 2


async def test_list_pages_through_runs_without_payloads(pg_dsn: str, schema: str) -> None:
    env = cli_env(pg_dsn, schema)
    for i in range(3):
        code, _, _ = await run_cli("enqueue", f"report.v{i}", '{"secret": "s3cret"}', env=env)
        assert code == 0
    code, out, _ = await run_cli("list", "--limit", "2", "--json", env=env)
    assert code == 0 and "s3cret" not in out
    first = json.loads(out)
    assert [r["type"] for r in first["runs"]] == ["report.v2", "report.v1"]
    code, out, _ = await run_cli("list", "--after", first["next"], "--type", "report.%", env=env)
    assert code == 0 and "report.v0" in out and "report.v1" not in out and "more:" not in out
    code, _, err = await run_cli("list", "--after", "yesterday", env=env)
    assert code == 2 and "cursor" in err


async def test_plugins_lists_example_executors(pg_dsn: str, schema: str) -> None:
    code, out, _ = await run_cli("plugins", "--json", env=cli_env(pg_dsn, schema))
    assert code == 0
    patterns = {e["pattern"] for e in json.loads(out)["executors"]}
    assert {
        "content.thumbnail.v1",
        "billing.invoice.v1",
        "billing.payment.v1",
        "media.video.v1",
        "notify.%",
    } <= patterns


async def test_schedule_commands(pg_dsn: str, schema: str) -> None:
    env = cli_env(pg_dsn, schema)
    code, out, _ = await run_cli(
        "schedule", "add", "reports.daily.v1", "0 9 * * *", "--tz", "Europe/Paris", env=env
    )
    assert code == 0
    schedule_id = out.split()[0]
    code, out, _ = await run_cli("schedule", "list", "--json", env=env)
    [record] = json.loads(out)
    assert record["timezone"] == "Europe/Paris" and record["enabled"] is True
    assert (await run_cli("schedule", "pause", schedule_id, env=env))[0] == 0
    code, out, _ = await run_cli("schedule", "list", "--json", env=env)
    assert json.loads(out)[0]["enabled"] is False
    assert (await run_cli("schedule", "resume", schedule_id, env=env))[0] == 0
    assert (await run_cli("schedule", "delete", schedule_id, env=env))[0] == 0
    code, out, _ = await run_cli("schedule", "list", "--json", env=env)
    assert json.loads(out) == []
    code, _, err = await run_cli("schedule", "add", "x.v1", "not a cron", env=env)
    assert code == 2


async def test_schedule_list_flags_what_workfleet_cannot_fire(
    pg_dsn: str, schema: str, run_sql: Any
) -> None:
    await run_sql(
        "INSERT INTO workflow_schedule (type, schedule, next_run_at, enabled) VALUES "
        "('every.v1', '@every 5m', now() + interval '1 hour', true), "
        "('paused.v1', '0 9 * * *', now() + interval '1 hour', false), "
        "('hourly.v1', '@hourly', now() + interval '1 hour', true)"
    )
    await run_sql("UPDATE workflow_schedule SET timezone = 'Mars/Olympus' WHERE type = 'paused.v1'")
    env = cli_env(pg_dsn, schema)
    code, out, _ = await run_cli("schedule", "list", env=env)
    assert code == 0
    lines = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "NOTE" in out.splitlines()[0]
    assert "invalid here: cron expression '@every 5m' is not supported" in lines["every.v1"]
    assert lines["every.v1"].endswith("disabled when due")
    assert "invalid here: unknown timezone 'Mars/Olympus'" in lines["paused.v1"]
    assert not lines["paused.v1"].endswith("disabled when due"), "it is disabled already"
    assert "invalid here" not in lines["hourly.v1"]
    code, out, _ = await run_cli("schedule", "list", "--json", env=env)
    problems = {r["type"]: r["problem"] for r in json.loads(out)}
    assert problems["hourly.v1"] is None
    assert "not supported" in problems["every.v1"] and "timezone" in problems["paused.v1"]


async def test_busy_metrics_port_is_a_configuration_error(pg_dsn: str, schema: str) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = cli_env(
            pg_dsn, schema, WORKFLEET_HTTP_HOST="127.0.0.1", WORKFLEET_HTTP_PORT=str(port)
        )
        code, _, err = await run_cli("worker", "--prefix", "notify.%", env=env)
    assert code == 2
    assert "WORKFLEET_HTTP_PORT" in err or str(port) in err
