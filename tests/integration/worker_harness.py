"""Run an in-process :class:`Worker` against the test schema, with a recording observer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tests.waiting import eventually
from workfleet.discovery import Discovery, ExecutorRegistry
from workfleet.plugin import Plugin
from workfleet.runtime.worker import Worker
from workfleet.settings import load_settings
from workfleet.testing import RecordingObserver


@dataclass
class Running:
    worker: Worker
    observer: RecordingObserver
    task: asyncio.Task[int]

    async def stop(self, timeout: float = 30.0) -> int:
        self.worker.request_stop()
        return await asyncio.wait_for(self.task, timeout)


def discovery_of(*plugins: Plugin) -> Discovery:
    return Discovery([], list(plugins), ExecutorRegistry.from_plugins(plugins), [])


@contextlib.asynccontextmanager
async def running_worker(
    dsn: str, schema: str, *plugins: Plugin, **overrides: Any
) -> AsyncIterator[Running]:
    """Start a worker serving ``plugins``; stop it (gracefully) when the block ends."""
    options: dict[str, Any] = {
        "database_url": dsn,
        "db_schema": schema,
        "http_enabled": False,
        "poll_interval": 1.0,
        "sweep_interval": 0.5,
        "log_format": "console",
    }
    options.update(overrides)
    settings = load_settings(**options)
    observer = RecordingObserver()
    worker = Worker(settings, discovery_of(*plugins), observer=observer)
    task = asyncio.create_task(worker.run())
    running = Running(worker, observer, task)
    try:
        await eventually(lambda: worker.health.started or task.done(), 15)
        if task.done():
            task.result()  # surface the start-up error
        yield running
    finally:
        if not task.done():
            await running.stop()
