"""After a PostgreSQL restart, /readyz says ready only when the worker can claim at once: the
pool's dead connections (and those its loops keep) are tested and replaced first, so the first
run inserted once the worker is ready starts at NOTIFY speed instead of after failed claims
and their backoff."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from typing import Any

import psycopg
import pytest

from tests.chaos.private_pg import private_server
from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Plugin, Run
from workfleet.db.migrate import migrate

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

SCHEMA = "chaos_ready"
plugin = Plugin("ready")


@plugin.executor("ready.ok.v1")
async def ok(run: Run[Any]) -> str:
    return "done"


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:  # HTTPError (503) included
        return False


async def _insert(dsn: str, n: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.workflow_run (type, payload) "
            "SELECT 'ready.ok.v1', '{}' FROM generate_series(1, %s)",
            [n],
        )


@pytest.mark.timeout(120)
async def test_ready_after_a_restart_means_the_next_run_starts_at_once() -> None:
    with private_server() as server:
        await migrate(server.dsn, SCHEMA)
        async with running_worker(
            server.dsn,
            SCHEMA,
            plugin,
            http_enabled=True,
            http_host="127.0.0.1",
            http_port=0,
            poll_interval=30,  # a pickup here comes from NOTIFY, never from a poll
            pool_min_size=5,  # several idle connections, all dead after the restart
            prefixes=["ready.%=20"],
        ) as running:
            http = running.worker.http
            assert http is not None

            async def ready() -> bool:
                return await asyncio.to_thread(_ready, http.port)

            await eventually(ready, 20)
            await _insert(server.dsn, 100)  # the loops' connections and the pool are in use
            await running.observer.wait_for(lambda: running.observer.finished >= 100, 30)
            await asyncio.sleep(1)  # the outcome writes and the heartbeats settle

            server.restart(down_seconds=3.0)
            await eventually(ready, 30, every=0.01)
            started = time.monotonic()
            await _insert(server.dsn, 1)
            await running.observer.wait_for(lambda: running.observer.finished >= 101, 30)
            # ready too early, the first claims meet dead connections and back off: 3-4.5 s.
            # Ready when it should be, the run starts at NOTIFY speed (well under a second,
            # more on a loaded machine): the bound sits between the two
            assert time.monotonic() - started < 1.5, "ready, so the run starts at once"
