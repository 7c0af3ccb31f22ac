"""structlog configuration: JSON in containers, console on a TTY.

Run log lines carry ``run_id``, ``type``, ``attempt`` and ``worker_id`` (bound per run). Payloads
are never logged by workfleet itself, and DSN passwords are redacted by a processor so that even
an exception message that quotes a connection string cannot leak one.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from workfleet.dsn import redact

LogFormat = Literal["auto", "json", "console"]

# The logger type every workfleet component takes (bound with ``.bind(**values)``).
Logger = structlog.typing.FilteringBoundLogger


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str) and ("://" in value or "password" in value.lower()):
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(fmt: LogFormat = "auto", level: str = "INFO") -> None:
    """Configure structlog (and the stdlib root logger) once for the process."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_processor,
    ]
    renderer: Any
    if use_json:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    # psycopg_pool logs every reconnect attempt at WARNING; our own lines say it better
    logging.getLogger("psycopg.pool").setLevel(max(numeric, logging.ERROR))


def get_logger(**bound: Any) -> Logger:
    """A logger with ``bound`` key/values attached."""
    logger: Logger = structlog.get_logger().bind(**bound)
    return logger


_RUN_KEYS = ("run_id", "type", "attempt", "worker_id")


def _run_context_vars() -> tuple[contextvars.ContextVar[Any], ...] | None:
    """structlog's own context variables for the run's four keys, or None if this structlog
    keeps them elsewhere. They are created through its public API (in a throwaway context), so
    ``merge_contextvars`` and ``get_contextvars`` see what :func:`bind_run_context` sets."""
    contextvars.copy_context().run(
        structlog.contextvars.bind_contextvars, **dict.fromkeys(_RUN_KEYS)
    )
    registry = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
    prefix = getattr(structlog.contextvars, "STRUCTLOG_KEY_PREFIX", None)
    if not isinstance(registry, dict) or not isinstance(prefix, str):
        return None
    found = tuple(registry.get(f"{prefix}{key}") for key in _RUN_KEYS)
    if not all(isinstance(var, contextvars.ContextVar) for var in found):
        return None
    return found  # type: ignore[return-value]


_RUN_VARS = _run_context_vars()


def bind_run_context(run_id: str, run_type: str, attempt: int, worker_id: str) -> None:
    """Bind the run's log context in the current context (the run's task): every structlog
    logger used there, the executor's own included, carries the four keys.

    ``structlog.contextvars.bind_contextvars`` does the same at twice the cost (a formatted
    name and a lookup per key, on every run); this sets structlog's variables directly, and
    falls back to it when they cannot be found.
    """
    if _RUN_VARS is None:
        structlog.contextvars.bind_contextvars(
            run_id=run_id, type=run_type, attempt=attempt, worker_id=worker_id
        )
        return
    v_run, v_type, v_attempt, v_worker = _RUN_VARS
    v_run.set(run_id)
    v_type.set(run_type)
    v_attempt.set(attempt)
    v_worker.set(worker_id)
