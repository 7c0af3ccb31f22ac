"""Argument parsing and dispatch for ``workfleet``; the commands live in sibling modules."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from workfleet import __version__
from workfleet.errors import (
    ConfigError,
    PluginError,
    RunNotFoundError,
    SchemaNotReadyError,
    StoreError,
    WorkfleetError,
)

EXIT = {
    "ok": 0,
    "failed": 1,
    "config": 2,
    "database": 3,
    "schema": 4,
    "plugin": 5,
}

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def run_async(coro: Coroutine[Any, Any, int], *, exit_grace: float = 1.0) -> int:
    """Run ``coro`` on uvloop when available (the worker's loop), else asyncio's.

    Unlike ``asyncio.run``, tasks still pending when ``coro`` returns are cancelled and given
    ``exit_grace`` seconds, then abandoned: an executor that swallows ``CancelledError`` must
    not keep a stopped worker alive.
    """
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        result: int = loop.run_until_complete(coro)
        return result
    finally:
        try:
            leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=exit_grace))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL (default: $WORKFLEET_DATABASE_URL or $DATABASE_URL)",
    )
    p.add_argument(
        "--schema",
        help="schema of the workflow tables (default: from the URL, "
        "else 'workflow'; env WORKFLEET_SCHEMA)",
    )
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help="log format (env WORKFLEET_LOG_FORMAT; auto: console on a TTY)",
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (env WORKFLEET_LOG_LEVEL)")


def _worker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prefix",
        action="append",
        metavar="PATTERN[=N]",
        help="a lease loop: type pattern and optional concurrency, e.g. "
        "'billing.%%=8'; repeatable (env WORKFLEET_PREFIXES='billing.%%=8,notify.%%')",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        help="default concurrency per prefix (env WORKFLEET_CONCURRENCY, default 10)",
    )
    p.add_argument(
        "--poll-only",
        action="store_true",
        default=None,
        help="no LISTEN connection; poll only (for PgBouncer transaction pooling)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        help="port of /metrics and probes (default 9464; 0 picks a free port)",
    )
    p.add_argument("--no-http", action="store_true", help="do not serve /metrics and probes")
    p.add_argument(
        "--skip-broken-plugins",
        action="store_true",
        default=None,
        help="start even if some plugins fail to import (they are reported)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workfleet",
        description="Run and operate a fleet of workers for Postgres-backed work. "
        "Producers INSERT INTO workflow_run; workers execute the runs.",
        epilog="Exit codes: 0 ok, 1 operation failed, 2 usage/configuration error, "
        "3 database unreachable, 4 schema not migrated, 5 plugin failed to load.",
    )
    parser.add_argument("--version", action="version", version=f"workfleet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from workfleet.cli import commands, dev, schedules

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p)
        p.set_defaults(handler=handler)
        return p

    add("migrate", commands.migrate, "create or upgrade the schema (safe to run concurrently)")
    _worker_options(add("worker", commands.worker, "run a worker until SIGTERM"))
    p = add(
        "dev",
        dev.dev,
        "run a worker on an embedded Postgres (no DATABASE_URL needed), "
        "migrate, and enqueue demo runs",
    )
    _worker_options(p)
    p.add_argument("--no-demo", action="store_true", help="do not enqueue the demo runs")
    p.add_argument(
        "--data-dir",
        default=".workfleet/pgdata",
        help="where the embedded Postgres keeps its data (default .workfleet/pgdata)",
    )

    p = add("enqueue", commands.enqueue, "submit one run")
    p.add_argument("type", help="run type, e.g. billing.invoice.v1")
    p.add_argument("payload", nargs="?", default="{}", help="JSON payload (default {})")
    p.add_argument("--key", help="idempotency key: a duplicate returns the existing run")
    p.add_argument("--priority", type=int, help="lower runs first (default 100)")
    p.add_argument("--delay", type=float, help="seconds from now before it may run")
    p.add_argument("--run-at", help="ISO-8601 time before which it does not run")
    p.add_argument("--max-attempts", type=int, help="attempts before it fails (default 3)")

    p = add(
        "status",
        commands.status,
        "counts by type and status, oldest pending, live "
        "workers, other workers, and pending types nobody serves",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("inspect", commands.inspect, "show one run and its audit trail")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("cancel", commands.cancel, "cancel a pending or running run")
    p.add_argument("run_id")
    p = add("redrive", commands.redrive, "run a failed run again with fresh attempts")
    p.add_argument("run_id")

    p = add("plugins", commands.plugins, "list discovered executors and plugin load errors")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add("check", commands.check, "check configuration, connectivity and schema version")

    schedules.add_parser(sub, _common)
    return parser


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings fields given on the command line (flags beat the environment)."""
    mapping = {
        "database_url": "database_url",
        "schema": "db_schema",
        "log_format": "log_format",
        "log_level": "log_level",
        "prefix": "prefixes",
        "concurrency": "concurrency",
        "poll_only": "poll_only",
        "http_port": "http_port",
        "skip_broken_plugins": "skip_broken_plugins",
    }
    out = {
        field: getattr(args, arg)
        for arg, field in mapping.items()
        if getattr(args, arg, None) is not None
    }
    if getattr(args, "no_http", False):
        out["http_enabled"] = False
    return out


def _fail(code: str, message: str) -> int:
    from workfleet.dsn import redact

    print(f"workfleet: error: {redact(message)}", file=sys.stderr)
    return EXIT[code]


def _exit_past_stuck_threads(code: int) -> None:
    """A sync executor that never returns would block interpreter exit: leave without it."""
    import os

    from workfleet.runtime.worker import stuck_executor_threads

    stuck = stuck_executor_threads()
    if stuck:
        print(
            f"workfleet: warning: {len(stuck)} executor thread(s) still running; "
            "exiting without them (their runs were released)",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        code = run_async(handler(args))
        if args.command in ("worker", "dev"):
            _exit_past_stuck_threads(code)
        return code
    except ConfigError as exc:
        return _fail("config", str(exc))
    except PluginError as exc:
        return _fail("plugin", str(exc))
    except SchemaNotReadyError as exc:
        return _fail("schema", str(exc))
    except StoreError as exc:
        return _fail("database", str(exc))
    except RunNotFoundError as exc:
        return _fail("failed", str(exc))
    except WorkfleetError as exc:
        return _fail("failed", str(exc))
    except KeyboardInterrupt:
        return 130
