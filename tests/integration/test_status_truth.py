"""`workfleet status` tells the truth about who serves what: a worker registers the patterns
its lease loops serve, and one that failed to start is not listed as live."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.integration.worker_harness import running_worker
from workfleet import Plugin, Run
from workfleet.db.status import PgStatus
from workfleet.errors import ConfigError

pytestmark = pytest.mark.postgres

plugin = Plugin("truth")


@plugin.executor("truth.billing.v1")
async def billing(run: Run[Any]) -> None: ...


@plugin.executor("truth.media.v1")
async def media(run: Run[Any]) -> None: ...


async def test_a_prefix_worker_registers_what_it_serves_and_other_types_show_unserved(
    pg_dsn: str, schema: str, pg_pool: Any, run_sql: Any
) -> None:
    status = PgStatus(pg_pool, schema)
    await run_sql("INSERT INTO workflow_run (type, payload) VALUES ('truth.media.v1', '{}')")
    async with running_worker(pg_dsn, schema, plugin, prefixes=["truth.billing.%"]) as running:
        [worker] = await status.live_workers()
        assert worker.worker_id == running.worker.settings.worker_id
        assert worker.patterns == ["truth.billing.v1"]
        summary = await status.status_summary()
        assert summary.unserved_types == ["truth.media.v1"]


async def test_a_worker_that_failed_to_start_is_not_listed_live(
    pg_dsn: str, schema: str, pg_pool: Any
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot serve /metrics"):
            async with running_worker(
                pg_dsn, schema, plugin, http_enabled=True, http_host="127.0.0.1", http_port=port
            ):
                pass
    assert await PgStatus(pg_pool, schema).live_workers() == []
