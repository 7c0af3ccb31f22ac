"""``workfleet schedule add|list|pause|resume|delete``: cron rows in ``workflow_schedule``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from workfleet.cli.connect import connected
from workfleet.cli.options import common, fail, settings_from
from workfleet.cli.render import emit, print_json, render_schedules
from workfleet.errors import ConfigError
from workfleet.operations import Reason, ScheduleResult, parse_id


def add_parser(sub: Any) -> None:
    """The ``schedule`` command and its actions, under the top-level subparsers ``sub``."""
    p = sub.add_parser(
        "schedule",
        help="manage cron schedules that create runs",
        description="Manage cron schedules. A schedule creates one run per fire "
        "time (idempotency key schedule:<id>:<unix seconds>).",
    )
    ssub = p.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    def action(name: str, handler: Any, help_: str) -> argparse.ArgumentParser:
        ap: argparse.ArgumentParser = ssub.add_parser(name, help=help_, description=help_)
        common(ap)
        ap.add_argument("--json", action="store_true", help="machine-readable output")
        ap.set_defaults(handler=handler)
        return ap

    ap = action("add", add, "add a schedule")
    ap.add_argument("type", help="run type to create, e.g. reports.daily.v1")
    ap.add_argument(
        "cron",
        help="5-field cron expression, e.g. '0 9 * * *', or @hourly, @daily, @weekly, "
        "@monthly, @yearly (stored as 5 fields)",
    )
    ap.add_argument("--tz", default="UTC", help="IANA timezone of the cron fields (default UTC)")
    ap.add_argument("--payload", default="{}", help="JSON payload of every run (default {})")
    ap.add_argument("--priority", type=int, default=100)
    ap.add_argument("--max-attempts", type=int, default=3)
    action("list", list_, "list schedules")
    for name, handler, help_ in (
        ("pause", pause, "stop a schedule from firing"),
        ("resume", resume, "let a paused schedule fire again"),
        ("delete", delete, "delete a schedule (soft delete)"),
    ):
        action(name, handler, help_).add_argument("schedule_id")


async def add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--payload is not valid JSON: {exc.msg}") from None
    async with connected(settings) as db:
        record = await db.ops.add_schedule(
            args.type,
            args.cron,
            timezone=args.tz,
            payload=payload,
            priority=args.priority,
            max_attempts=args.max_attempts,
        )
    emit(args.json, record, f"{record.id} next run at {record.next_run_at.isoformat()}")
    return 0


async def list_(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with connected(settings) as db:
        records = await db.ops.list_schedules()
    if args.json:
        print_json(records)
    else:
        print(render_schedules(records))
    return 0


def _report(result: ScheduleResult, verb: str, as_json: bool = False) -> int:
    if result.done:
        emit(as_json, result, f"{verb} {result.schedule_id}")
        return 0
    if result.reason is Reason.CANNOT_FIRE:
        return fail("failed", f"schedule {result.schedule_id} cannot fire: {result.problem}")
    return fail("failed", f"no schedule {result.schedule_id}")


async def pause(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    schedule_id = parse_id(args.schedule_id, "schedule")
    async with connected(settings) as db:
        return _report(await db.ops.pause_schedule(schedule_id), "paused", args.json)


async def resume(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    schedule_id = parse_id(args.schedule_id, "schedule")
    async with connected(settings) as db:
        return _report(await db.ops.resume_schedule(schedule_id), "resumed", args.json)


async def delete(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    schedule_id = parse_id(args.schedule_id, "schedule")
    async with connected(settings) as db:
        return _report(await db.ops.delete_schedule(schedule_id), "deleted", args.json)
