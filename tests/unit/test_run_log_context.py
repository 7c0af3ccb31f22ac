"""The run's log context: what every structlog logger in a run's task carries."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import structlog

from workfleet.observability import logging as wf_logging
from workfleet.observability.logging import bind_run_context


def _merged() -> dict[str, Any]:
    return dict(structlog.contextvars.merge_contextvars(None, "info", {}))


def test_the_run_context_is_structlogs_own() -> None:
    """Bound through structlog's own variables: ``merge_contextvars`` (in every workfleet log
    configuration) and ``get_contextvars`` see the four keys, and clearing works as usual."""
    assert wf_logging._RUN_VARS is not None, "this structlog keeps its variables elsewhere"

    def in_a_run() -> None:
        bind_run_context("r-1", "t.a.v1", 2, "worker-a")
        expected = {"run_id": "r-1", "type": "t.a.v1", "attempt": 2, "worker_id": "worker-a"}
        assert structlog.contextvars.get_contextvars() == expected
        assert _merged() == expected
        structlog.contextvars.clear_contextvars()
        assert _merged() == {}

    contextvars.copy_context().run(in_a_run)
    assert "run_id" not in _merged(), "nothing leaks out of the run's context"


def test_the_fallback_binds_the_same_keys(monkeypatch: Any) -> None:
    monkeypatch.setattr(wf_logging, "_RUN_VARS", None)

    def in_a_run() -> dict[str, Any]:
        bind_run_context("r-2", "t.b.v1", 1, "worker-b")
        return _merged()

    merged = contextvars.copy_context().run(in_a_run)
    assert merged == {"run_id": "r-2", "type": "t.b.v1", "attempt": 1, "worker_id": "worker-b"}


async def test_concurrent_runs_keep_their_own_context() -> None:
    async def run(run_id: str) -> str:
        bind_run_context(run_id, "t.a.v1", 1, "w")
        await asyncio.sleep(0)
        return str(_merged()["run_id"])

    assert list(await asyncio.gather(run("a"), run("b"), run("c"))) == ["a", "b", "c"]
