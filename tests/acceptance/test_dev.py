"""``workfleet dev``: ``--reload`` restarts the worker when plugin code changes; demo runs are
enqueued once, not again at every start; the printed URL works for libpq clients."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from tests.acceptance.cli import cli_env, started
from tests.waiting import eventually
from workfleet.cli.dev import DEMO_RUNS, portable_url
from workfleet.dsn import resolve_dsn

pytestmark = pytest.mark.acceptance

SOURCE = """\
import workfleet
plugin = workfleet.Plugin("reloadme")

@plugin.executor("rl.echo.v1")
async def echo(run):
    return {"version": VERSION}
"""


def _write(path: Path, version: str) -> None:
    path.write_text(f'VERSION = "{version}"\n' + SOURCE)
    later = time.time() + 2  # a new mtime even on a coarse-grained file system
    os.utime(path, (later, later))


async def _result(run_sql: Any, run_id: Any) -> Any:
    rows = await run_sql("SELECT status, result FROM workflow_run WHERE id = %s", [run_id])
    return rows[0][1] if rows and rows[0][0] == "succeeded" else None


@pytest.mark.timeout(120)
async def test_reload_restarts_the_worker_on_a_plugin_change(
    pg_dsn: str, schema: str, run_sql: Any, tmp_path: Path
) -> None:
    module = tmp_path / "rl_plugin.py"
    _write(module, "one")
    info = tmp_path / "rl_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rl-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[workfleet.plugins]\nrl = rl_plugin:plugin\n")
    env = cli_env(pg_dsn, schema, PYTHONPATH=str(tmp_path))
    args = ("dev", "--reload", "--no-demo", "--prefix", "rl.%")
    async with started(*args, env=env) as dev:
        await dev.wait_for_line("worker started", 60)
        [(first,)] = await run_sql(
            "INSERT INTO workflow_run (type, payload) VALUES ('rl.echo.v1', '{}') RETURNING id"
        )
        assert await eventually(lambda: _result(run_sql, first), 30) == {"version": "one"}

        _write(module, "two")
        await dev.wait_for_line("rl_plugin.py changed; restarting the worker", 30)
        await eventually(lambda: sum("worker started" in line for line in dev.lines) >= 2, 60)
        [(second,)] = await run_sql(
            "INSERT INTO workflow_run (type, payload) VALUES ('rl.echo.v1', '{}') RETURNING id"
        )
        assert await eventually(lambda: _result(run_sql, second), 30) == {"version": "two"}
        assert await dev.terminate(60) == 0


def test_demo_runs_are_enqueued_once() -> None:
    keys = [r.idempotency_key for r in DEMO_RUNS]
    assert all(keys) and len(set(keys)) == len(keys), "a restart finds them by key"


async def test_the_printed_url_carries_the_schema_for_psql_and_workfleet(
    pg_dsn: str, schema: str, run_sql: Any
) -> None:
    url = portable_url(_as_url(pg_dsn), schema)
    assert resolve_dsn(url).schema == schema, "workfleet reads the schema from it"
    await run_sql("INSERT INTO workflow_run (type, payload) VALUES ('dsn.v1', '{}')")
    # a plain libpq client (as psql is) lands in the schema with no SET search_path
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT type FROM workflow_run")
        assert await cur.fetchall() == [("dsn.v1",)]


def _as_url(conninfo: str) -> str:
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    user, dbname = parts.get("user", "postgres"), parts.get("dbname", "postgres")
    return f"postgresql://{user}@/{dbname}?host={quote(host, safe='')}&port={port}"
