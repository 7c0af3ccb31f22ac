"""Argument parsing and dispatch for ``workfleet``: the commands live in sibling modules, which
this one imports (never the reverse); errors become exit codes here (see :data:`EXIT`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from workfleet import __version__
from workfleet.cli import api, commands, completion, dev, runs, schedules, workflows
from workfleet.cli.options import EXIT, common, fail, worker_options
from workfleet.errors import (
    ConfigError,
    InvalidRequestError,
    PermissionDeniedError,
    PluginError,
    RunNotFoundError,
    SchemaNotReadyError,
    StoreDataError,
    StoreError,
    WorkfleetError,
)
from workfleet.models import RunStatus

__all__ = ["EXIT", "build_parser", "main", "run_async"]

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


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


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

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        common(p)
        p.set_defaults(handler=handler)
        return p

    _json(
        add("migrate", commands.migrate, "create or upgrade the schema (safe to run concurrently)")
    )
    worker_options(add("worker", commands.worker, "run a worker until SIGTERM"))
    p = add(
        "dev",
        dev.dev,
        "run a worker on an embedded Postgres (no DATABASE_URL needed), "
        "migrate, and enqueue demo runs",
    )
    worker_options(p)
    p.add_argument("--no-demo", action="store_true", help="do not enqueue the demo runs")
    p.add_argument(
        "--reload",
        action="store_true",
        help="restart the worker when the code of an installed plugin changes",
    )
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
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("list", commands.list_, "runs, newest first, a page at a time (no payloads)")
    p.add_argument(
        "--status",
        action="append",
        choices=[str(s) for s in RunStatus],
        help="only runs in this status; repeatable",
    )
    p.add_argument(
        "--type",
        action="append",
        metavar="PATTERN",
        help="a type or a prefix pattern such as 'billing.%%'; repeatable",
    )
    p.add_argument("--limit", type=int, default=50, help="runs per page (default 50, at most 1000)")
    p.add_argument("--after", metavar="CURSOR", help="the page after this one (printed as 'more')")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add(
        "status",
        commands.status,
        "counts by type and status, oldest pending, live "
        "workers, other workers, and pending types nobody serves",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--type",
        action="append",
        metavar="PATTERN",
        help="only types this pattern matches, e.g. 'billing.%%'; repeatable",
    )
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C, like top",
    )

    for name, handler, help_ in (
        ("inspect", commands.inspect, "show one run and its audit trail"),
        ("cancel", commands.cancel, "cancel a pending or running run"),
        ("redrive", commands.redrive, "run a failed run again with fresh attempts"),
    ):
        p = add(name, handler, help_)
        p.add_argument("run_id")
        p.add_argument("--json", action="store_true", help="machine-readable output")
    workflows.add_commands(add)

    p = add("plugins", commands.plugins, "list discovered executors and plugin load errors")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _json(add("check", commands.check, "check configuration, connectivity and schema version"))

    schedules.add_parser(sub)
    runs.add_parser(sub)
    p = sub.add_parser(
        "completion",
        help='print a shell completion script: eval "$(workfleet completion bash)"',
        description=completion.__doc__.split("\n\n")[0] if completion.__doc__ else None,
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(handler=None)
    api.add_parser(sub)
    return parser


def _exit_past_stuck_threads(code: int) -> None:
    """A sync executor that never returns would block interpreter exit: leave without it."""
    # loaded only after a worker ran, which loaded the runtime already
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
    if args.command == "completion":
        print(completion.script(parser, args.shell), end="")
        return 0
    handler: Handler = args.handler
    if args.command in ("worker", "dev"):
        # a SIGTERM while plugins load is a graceful stop too, not a death by signal
        from workfleet.runtime.signals import hold_stop_signals

        hold_stop_signals()
    try:
        code = run_async(handler(args))
        if args.command in ("worker", "dev"):
            _exit_past_stuck_threads(code)
        return code
    except (ConfigError, InvalidRequestError) as exc:
        return fail("config", str(exc))
    except PluginError as exc:
        return fail("plugin", str(exc))
    except SchemaNotReadyError as exc:
        return fail("schema", str(exc))
    except (StoreDataError, PermissionDeniedError) as exc:  # the database was reached
        return fail("failed", str(exc))
    except StoreError as exc:
        return fail("database", str(exc))
    except (RunNotFoundError, WorkfleetError) as exc:
        return fail("failed", str(exc))
    except KeyboardInterrupt:
        return 130
