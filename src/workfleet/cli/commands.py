"""The operational commands: migrate, worker, enqueue, list, status, inspect, cancel, redrive,
plugins, check.

Each parses its arguments, asks :class:`~workfleet.operations.Operations` (through
:mod:`workfleet.cli.connect`) and prints; a refusal (:class:`~workfleet.operations.Reason`)
becomes a message on stderr and exit status 1. Errors raised here (configuration, database,
schema) are turned into exit codes by :func:`workfleet.cli.main.main`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from workfleet.cli.connect import connected, probe
from workfleet.cli.connect import migrate as apply_migrations
from workfleet.cli.options import EXIT, fail, settings_from
from workfleet.cli.render import (
    CLEAR,
    emit,
    filter_status,
    print_json,
    render_run,
    render_runs,
    render_status,
    run_json,
    runs_json,
    table,
    use_colour,
)
from workfleet.cli.workflows import render_workflow, workflow_json
from workfleet.discovery import discover
from workfleet.dsn import redact
from workfleet.errors import ConfigError, InvalidRequestError, PermissionDeniedError
from workfleet.models import NewRun, RunStatus, check_new_run
from workfleet.operations import ActionResult, Reason, parse_id
from workfleet.patterns import TypePattern
from workfleet.store import RunQuery


def refused(result: ActionResult) -> int:
    """Say why an action on a run was not done; exit status 1."""
    run_id, status = result.run_id, result.status
    messages = {
        Reason.NOT_FOUND: f"no run {run_id}",
        Reason.NOT_CANCELLABLE: (
            f"run {run_id} is {status}; only pending or leased runs can be cancelled"
        ),
        Reason.NOT_REDRIVABLE: f"run {run_id} is {status}; only failed runs can be redriven",
        Reason.DELETED: f"run {run_id} is deleted; a deleted run never runs again",
    }
    reason = result.reason or Reason.NOT_FOUND
    return fail("failed", messages.get(reason, f"run {run_id}: {reason}"))


async def migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    schema = settings.resolved_dsn().schema
    applied = await apply_migrations(settings)
    lines = [f"applied {name} to schema {schema}" for name in applied]
    emit(
        args.json,
        {"schema": schema, "applied": applied},
        "\n".join(lines) or f"schema {schema} is up to date",
    )
    return 0


async def worker(args: argparse.Namespace) -> int:
    # the runtime is loaded only by the commands that run a worker (start-up of the others)
    from workfleet.runtime.worker import serve

    settings = settings_from(args)
    discovery = discover(skip_broken=settings.skip_broken_plugins)
    for failure in discovery.failures:
        print(f"workfleet: warning: skipped plugin: {failure.error}", file=sys.stderr)
    if not len(discovery.registry):
        raise ConfigError(
            "no executors found: install a plugin package that declares "
            "entry points in the 'workfleet.plugins' group"
        )
    return await serve(settings, discovery)


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--run-at {text!r} is not an ISO-8601 time") from None
    if value.tzinfo is None:
        raise ConfigError(f"--run-at {text!r} needs a timezone, e.g. {text}+00:00")
    return value


async def enqueue(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"payload is not valid JSON: {exc.msg} at position {exc.pos}") from None
    run = NewRun(
        type=args.type,
        payload=payload,
        priority=args.priority,
        run_at=_parse_time(args.run_at) if args.run_at else None,
        delay=args.delay,
        idempotency_key=args.key,
        max_attempts=args.max_attempts,
    )
    try:  # before connecting: bad input is exit 2 whether or not the database is up
        check_new_run(run)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    async with connected(settings) as db:
        result = await db.ops.enqueue(run)
    note = "" if result.created else " (existing run with this idempotency key)"
    emit(args.json, {"id": result.id, "created": result.created}, f"{result.id}{note}")
    return 0


async def list_(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        types = tuple(TypePattern.parse(t) for t in args.type or ())
    except ValueError as exc:
        raise ConfigError(f"--type: {exc}") from None
    query = RunQuery(statuses=tuple(RunStatus(s) for s in args.status or ()), types=types)
    async with connected(settings) as db:
        page = await db.ops.list_runs(query, limit=args.limit, after=args.after)
    if args.json:
        print_json(runs_json(page))
        return 0
    print(render_runs(page))
    if page.next is not None:
        print(f"\nmore: --after {page.next.encode()}")
    return 0


async def status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        patterns = [TypePattern.parse(t) for t in args.type or ()]
    except ValueError as exc:
        raise ConfigError(f"--type: {exc}") from None
    if args.watch is not None and args.watch <= 0:
        raise ConfigError("--watch takes a positive number of seconds")
    colour = use_colour(sys.stdout)
    async with connected(settings) as db:
        while True:
            summary = filter_status(await db.ops.status(), patterns)
            if args.json:
                print_json(summary)
            else:
                text = render_status(summary, db.schema, colour=colour)
                if args.watch is not None and sys.stdout.isatty():
                    # like top: redraw in place; the clock says the view is live
                    now = datetime.now(UTC).strftime("%H:%M:%S")
                    text = f"{CLEAR}every {args.watch:g}s, {now} UTC (Ctrl-C to stop)\n{text}"
                print(text, flush=True)
            if args.watch is None:
                return 0
            try:
                await asyncio.sleep(args.watch)
            except asyncio.CancelledError:  # Ctrl-C during the pause
                return 0


async def inspect(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    run_id = parse_id(args.run_id)
    async with connected(settings) as db:
        try:
            detail = await db.ops.inspect(run_id)
        except PermissionDeniedError:
            return fail(
                "failed",
                "inspect shows a run's payload and result, and this role may not read them "
                "(it lacks SELECT on workflow_run.payload and .result, as the reader role of "
                "docs/security.md does): connect as the worker role or the schema's owner, "
                "or use `workfleet status`, which reads no payloads",
            )
    if detail is None:
        return fail("failed", f"no run {run_id}")
    flow = detail.workflow
    if args.json:
        print_json(
            run_json(detail.run, detail.events)
            | ({} if flow is None else {"workflow": workflow_json(flow)})
        )
    else:
        print(render_run(detail.run, detail.events))
        if flow is not None:
            print(render_workflow(flow))
    return 0


async def cancel(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    run_id = parse_id(args.run_id)
    async with connected(settings) as db:
        result = await db.ops.cancel(run_id)
    if not result.done:
        return refused(result)
    emit(args.json, result, f"cancelled {run_id}")
    return 0


async def redrive(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    run_id = parse_id(args.run_id)
    async with connected(settings) as db:
        result = await db.ops.redrive(run_id)
    if not result.done:
        return refused(result)
    emit(args.json, result, f"redriven {run_id}: pending with fresh attempts")
    return 0


async def plugins(args: argparse.Namespace) -> int:
    settings_from(args)
    discovery = discover(skip_broken=True)
    rows = [
        {
            "pattern": str(p),
            "plugin": spec.plugin,
            "function": spec.qualname,
            "kind": "workflow" if spec.workflow else "async" if spec.is_async else "sync",
            "timeout": spec.timeout,
            "max_attempts": spec.max_attempts,
            "payload": spec.payload_model.__name__ if spec.payload_model else None,
        }
        for p, spec in sorted(discovery.registry.executors.items())
    ]
    errors = [
        {"distribution": f.plugin.distribution, "entry_point": f.plugin.name, "error": f.error}
        for f in discovery.failures
    ]
    if args.json:
        print_json({"executors": rows, "errors": errors})
    else:
        print(
            table(
                ["PATTERN", "PLUGIN", "KIND", "PAYLOAD", "FUNCTION"],
                [
                    [r["pattern"], r["plugin"], r["kind"], r["payload"] or "-", r["function"]]
                    for r in rows
                ],
            )
            if rows
            else "no executors found"
        )
        for e in errors:
            print(f"\nLOAD ERROR {e['distribution']} / {e['entry_point']}: {e['error']}")
    return EXIT["failed"] if errors else 0


async def check(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    url = redact(settings.database_url.get_secret_value()) if settings.database_url else None
    if not args.json:
        print(f"config:     ok (database {url})" if url else "config: ok")
    found = await probe(settings)
    current = found.version == found.latest
    state = "ok" if current else "needs `workfleet migrate`"
    emit(
        args.json,
        {
            "database": url,
            "server": found.server,
            "schema": found.schema,
            "version": found.version,
            "latest": found.latest,
            "ok": current,
        },
        f"database:   ok ({found.server})\n"
        f"schema:     {found.schema} at version {found.version or 'none'} of {found.latest} "
        f"({state})",
    )
    return 0 if current else EXIT["schema"]
