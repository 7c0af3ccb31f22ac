"""``workfleet schedule add|list|pause|resume|delete``: cron rows in ``workflow_schedule``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from workfleet.errors import ConfigError, RunNotFoundError


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
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
    ap = action("list", list_, "list schedules")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    for name, handler, help_ in (
        ("pause", pause, "stop a schedule from firing"),
        ("resume", resume, "let a paused schedule fire again"),
        ("delete", delete, "delete a schedule (soft delete)"),
    ):
        action(name, handler, help_).add_argument("schedule_id")


async def add(args: argparse.Namespace) -> int:
    from workfleet.cli.commands import connected, settings_from

    settings = settings_from(args)
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--payload is not valid JSON: {exc.msg}") from None
    async with connected(settings) as (_store, _status, admin, _schema):
        try:
            schedule_id = await admin.add_schedule(
                args.type, args.cron, args.tz, payload, args.priority, args.max_attempts
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        [record] = [s for s in await admin.list_schedules() if s.id == schedule_id]
    print(f"{schedule_id} next run at {record.next_run_at.isoformat()}")
    return 0


async def list_(args: argparse.Namespace) -> int:
    from workfleet.cli.commands import connected, print_json, settings_from
    from workfleet.cli.render import table

    settings = settings_from(args)
    async with connected(settings) as (_store, _status, admin, _schema):
        records = await admin.list_schedules()
    if args.json:
        print_json(records)
        return 0
    if not records:
        print("no schedules")
        return 0
    print(
        table(
            ["ID", "TYPE", "CRON", "TZ", "ENABLED", "NEXT RUN", "LAST RUN", "NOTE"],
            [
                [
                    r.id,
                    r.type,
                    r.schedule,
                    r.timezone,
                    "yes" if r.enabled else "no",
                    r.next_run_at.isoformat(timespec="seconds"),
                    r.last_run_at.isoformat(timespec="seconds") if r.last_run_at else None,
                    note(r.problem, r.enabled),
                ]
                for r in records
            ],
        )
    )
    return 0


def note(problem: str | None, enabled: bool) -> str | None:
    """The NOTE of a schedule workfleet cannot fire (another tool may have written it)."""
    if problem is None:
        return None
    return f"invalid here: {problem}" + (" - disabled when due" if enabled else "")


async def _toggle(args: argparse.Namespace, verb: str) -> int:
    from workfleet.cli.commands import connected, parse_run_id, settings_from

    settings = settings_from(args)
    schedule_id = parse_run_id(args.schedule_id)
    async with connected(settings) as (_store, _status, admin, _schema):
        if verb == "delete":
            ok = await admin.delete_schedule(schedule_id)
        else:
            ok = await admin.set_schedule_enabled(schedule_id, verb == "resume")
    if not ok:
        raise RunNotFoundError(f"no schedule {schedule_id}")
    print(f"{verb}d {schedule_id}")
    return 0


async def pause(args: argparse.Namespace) -> int:
    return await _toggle(args, "pause")


async def resume(args: argparse.Namespace) -> int:
    return await _toggle(args, "resume")


async def delete(args: argparse.Namespace) -> int:
    return await _toggle(args, "delete")
