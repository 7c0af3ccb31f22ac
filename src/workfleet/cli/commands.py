"""The operational commands: migrate, worker, enqueue, status, inspect, cancel, redrive, ..."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from workfleet.errors import ConfigError, RunNotFoundError, StoreError
from workfleet.models import NewRun, RunStatus
from workfleet.settings import Settings, load_settings


def settings_from(args: argparse.Namespace) -> Settings:
    from workfleet.cli.main import overrides
    from workfleet.observability.logging import configure_logging

    settings = load_settings(**overrides(args))
    configure_logging(settings.log_format, settings.log_level)
    return settings


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[tuple[Any, Any, Any, str]]:
    """A small pool plus the run, status and schedule stores for one CLI command."""
    from workfleet.db.migrate import require_schema
    from workfleet.db.pool import open_pool
    from workfleet.db.schedules import PgSchedules
    from workfleet.db.status import PgStatus
    from workfleet.db.store import PgStore

    resolved = settings.resolved_dsn()
    pool = await open_pool(resolved.conninfo, max_size=2, connect_timeout=settings.connect_timeout)
    try:
        async with pool.connection() as conn:
            await require_schema(conn, resolved.schema)
        schema = resolved.schema
        yield PgStore(pool, schema), PgStatus(pool, schema), PgSchedules(pool, schema), schema
    finally:
        await pool.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def print_json(value: Any) -> None:
    print(json.dumps(value, default=_json_default, indent=2, sort_keys=True))


def parse_run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a run id (a UUID)") from None


# --- commands ------------------------------------------------------------------------------


async def migrate(args: argparse.Namespace) -> int:
    from workfleet.db.migrate import migrate as run_migrations

    settings = settings_from(args)
    resolved = settings.resolved_dsn()
    applied = await run_migrations(resolved.conninfo, resolved.schema)
    if applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name} to schema {resolved.schema}")
    else:
        print(f"schema {resolved.schema} is up to date")
    return 0


async def worker(args: argparse.Namespace) -> int:
    from workfleet.plugins import discover
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
    if not run.type.strip():
        raise ConfigError("run type must not be empty")
    async with connected(settings) as (store, _status, _schedules, _schema):
        [result] = await store.enqueue_many([run])
    note = "" if result.created else " (existing run with this idempotency key)"
    print(f"{result.id}{note}")
    return 0


async def status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with connected(settings) as (_store, status_reads, _schedules, schema):
        summary = await status_reads.status_summary()
    if args.json:
        print_json(summary)
        return 0
    from workfleet.cli.render import render_status

    print(render_status(summary, schema))
    return 0


async def inspect(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    run_id = parse_run_id(args.run_id)
    async with connected(settings) as (store, _status, _schedules, _schema):
        record = await store.get(run_id)
        if record is None:
            raise RunNotFoundError(f"no run {run_id}")
        events = await store.events(run_id)
    if args.json:
        print_json({"run": record, "events": events})
        return 0
    from workfleet.cli.render import render_run

    print(render_run(record, events))
    return 0


async def cancel(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    run_id = parse_run_id(args.run_id)
    async with connected(settings) as (store, _status, _schedules, _schema):
        if await store.cancel(run_id):
            print(f"cancelled {run_id}")
            return 0
        record = await store.get(run_id)
    if record is None:
        raise RunNotFoundError(f"no run {run_id}")
    raise RunNotFoundError(
        f"run {run_id} is {record.status}; only pending or leased runs can be cancelled"
    )


async def redrive(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    run_id = parse_run_id(args.run_id)
    async with connected(settings) as (store, _status, _schedules, _schema):
        if await store.redrive(run_id, (RunStatus.FAILED,)):
            print(f"redriven {run_id}: pending with fresh attempts")
            return 0
        record = await store.get(run_id)
    if record is None:
        raise RunNotFoundError(f"no run {run_id}")
    raise RunNotFoundError(f"run {run_id} is {record.status}; only failed runs can be redriven")


async def plugins(args: argparse.Namespace) -> int:
    from workfleet.plugins import discover

    settings_from(args)
    discovery = discover(skip_broken=True)
    rows = [
        {
            "pattern": str(p),
            "plugin": spec.plugin,
            "function": spec.qualname,
            "kind": "async" if spec.is_async else "sync",
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
        from workfleet.cli.render import table

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
    return 1 if errors else 0


async def check(args: argparse.Namespace) -> int:
    from workfleet.db.migrate import latest_version, schema_version
    from workfleet.db.pool import open_pool
    from workfleet.dsn import redact

    settings = settings_from(args)
    resolved = settings.resolved_dsn()
    print(
        f"config:     ok (database {redact(settings.database_url.get_secret_value())})"
        if settings.database_url
        else "config: ok"
    )
    pool = await open_pool(resolved.conninfo, max_size=1, connect_timeout=settings.connect_timeout)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT version()")
            row = await cur.fetchone()
            print(f"database:   ok ({str(row[0]).split(',')[0] if row else '?'})")
            version = await schema_version(conn, resolved.schema)
    except StoreError:
        raise
    finally:
        await pool.close()
    latest = latest_version()
    state = "ok" if version == latest else "needs `workfleet migrate`"
    print(f"schema:     {resolved.schema} at version {version or 'none'} of {latest} ({state})")
    return 0 if version == latest else 4
