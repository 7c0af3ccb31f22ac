"""Probes through a database outage: unready, never dead, and back without a restart."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

from tests.integration.tcp_proxy import pg_proxy
from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Plugin, Run

plugin = Plugin("outage")


@plugin.executor("outage.ok.v1")
async def ok(run: Run[Any]) -> str:
    return "done"


def _probe(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_database_outage_makes_the_worker_unready_not_dead(
    pg_dsn: str, schema: str, run_sql: Any
) -> None:
    async with (
        pg_proxy(pg_dsn) as proxy,
        running_worker(
            proxy.dsn,
            schema,
            plugin,
            http_enabled=True,
            http_host="127.0.0.1",
            http_port=0,
            poll_interval=0.2,
            connect_timeout=2,
        ) as running,
    ):
        http = running.worker.http
        assert http is not None

        async def probe(path: str) -> int:
            return await asyncio.to_thread(_probe, http.port, path)

        await eventually(lambda: running.observer.listener_connected, 10)
        assert await probe("/readyz") == 200
        assert await probe("/livez") == 200

        proxy.cut()

        async def unready() -> bool:
            return await probe("/readyz") == 503

        await eventually(unready, 15)
        for _ in range(10):  # the outage goes on: liveness must hold all along
            assert await probe("/livez") == 200
            assert await probe("/startupz") == 200
            await asyncio.sleep(0.2)
        assert not running.task.done(), "a database outage must not stop the worker"

        proxy.restore()

        async def ready() -> bool:
            return await probe("/readyz") == 200

        await eventually(ready, 30)
        await run_sql("INSERT INTO workflow_run (type, payload) VALUES ('outage.ok.v1', '{}')")
        await running.observer.wait_for(lambda: running.observer.finished >= 1, 15)
        assert running.observer.listener_reconnects >= 1
