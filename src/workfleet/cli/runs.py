"""``workfleet runs``: find runs by what they are, page through them, pipe their ids on.

    workfleet runs --status failed --type 'billing.%' --since 2h --error timeout
    workfleet runs --status failed --ids --all | xargs -n1 workfleet redrive

The filters (:func:`add_filters`, :func:`query_from`) are those of
:class:`~workfleet.store.RunQuery`, so the same selection can drive other actions on the runs
it selects: ``runs`` takes an action word (``list`` when none is given), and :data:`ACTIONS`
maps each to its handler and its own options. Actions that change runs in bulk belong beside
``list`` here, with the same filters.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from workfleet.cli.connect import connected
from workfleet.cli.options import common, settings_from
from workfleet.cli.render import print_json, render_run_rows, runs_json
from workfleet.errors import ConfigError
from workfleet.models import RunStatus
from workfleet.operations import BulkAction
from workfleet.patterns import TypePattern
from workfleet.settings import glob_hint
from workfleet.store import MAX_BULK, MAX_PAGE, RunQuery

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, flag: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 time with a zone, or an age such as ``90s``, ``15m``, ``2h``, ``3d``, ``1w``
    (that long ago); :class:`ConfigError` naming ``flag`` otherwise."""
    ago = _AGO.match(text.strip())
    if ago:
        return (now or datetime.now(UTC)) - timedelta(
            seconds=float(ago.group(1)) * _UNITS[ago.group(2)]
        )
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is neither an ISO-8601 time nor an age such as 15m, 2h or 3d"
        ) from None
    if value.tzinfo is None:
        raise ConfigError(f"{flag} {text!r} needs a timezone, e.g. {text}+00:00")
    return value


def add_filters(p: argparse.ArgumentParser) -> None:
    """The options that select runs (every one narrows; none: every run)."""
    p.add_argument(
        "--status",
        action="append",
        choices=[str(s) for s in RunStatus],
        help="runs in this status; repeatable",
    )
    p.add_argument(
        "--type",
        action="append",
        metavar="PATTERN",
        help="an exact type or a prefix such as 'billing.%%'; repeatable",
    )
    p.add_argument("--since", metavar="WHEN", help="created at or after: ISO time, or an age (2h)")
    p.add_argument("--until", metavar="WHEN", help="created before: ISO time, or an age (15m)")
    p.add_argument("--error", metavar="TEXT", help="last_error contains TEXT (any case)")
    p.add_argument(
        "--payload",
        metavar="JSON",
        help='payload contains this JSON, e.g. \'{"customer_id": "C-1"}\'',
    )


def query_from(args: argparse.Namespace) -> RunQuery:
    """The :class:`RunQuery` the filter options describe; :class:`ConfigError` naming the
    flag at fault."""
    types = []
    for text in args.type or ():
        try:
            glob_hint(text)
            types.append(TypePattern.parse(text))
        except ValueError as exc:
            raise ConfigError(f"--type: {exc}") from None
    payload = None
    if args.payload is not None:
        try:
            payload = json.loads(args.payload)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--payload is not valid JSON: {exc.msg} at {exc.pos}") from None
    now = datetime.now(UTC)
    return RunQuery(
        statuses=tuple(RunStatus(s) for s in args.status or ()),
        types=tuple(types),
        since=None if args.since is None else parse_when(args.since, "--since", now),
        until=None if args.until is None else parse_when(args.until, "--until", now),
        payload=payload,
        error=args.error or None,
    )


async def list_runs(args: argparse.Namespace) -> int:
    """Print one page (or, with ``--all``, every page) of the selected runs, newest first."""
    settings = settings_from(args)
    query = query_from(args)
    if not 1 <= args.limit <= MAX_PAGE:
        raise ConfigError(f"--limit must be between 1 and {MAX_PAGE}")
    after: str | None = args.after
    async with connected(settings) as db:
        while True:
            page = await db.ops.list_runs(query, limit=args.limit, after=after)
            if args.ids:
                # one id a line and nothing else: ready for xargs or a shell loop
                for run in page.runs:
                    print(run.id)
            elif args.json:
                print_json(runs_json(page))
            else:
                print(render_run_rows(page.runs, colour=sys.stdout.isatty()))
            if page.next is None or not args.all:
                break
            after = page.next.encode()
            sys.stdout.flush()
    if page.next is not None and not args.ids and not args.json:
        print(f"\nmore: --after {page.next.encode()}", file=sys.stderr)
    return 0


# action word -> (handler, what it does, the options of its own)
ACTIONS: dict[str, tuple[Handler, str, Callable[[argparse.ArgumentParser], None]]] = {}


def _list_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=50, help=f"runs per page (at most {MAX_PAGE})")
    p.add_argument("--after", metavar="CURSOR", help="the page after this one (from 'more:')")
    p.add_argument("--all", action="store_true", help="every page, not just the first")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--ids", action="store_true", help="run ids only, one a line (for pipes)")


ACTIONS["list"] = (list_runs, "list the selected runs (the default)", _list_options)


def _filtered(query: RunQuery) -> bool:
    return (
        bool(query.statuses or query.types or query.since or query.until or query.payload)
        or query.error is not None
    )


async def bulk_action(args: argparse.Namespace) -> int:
    """``runs cancel`` / ``runs redrive``: select with the filters (at most ``--max`` runs,
    newest first; only runs the action applies to), show how many, ask (``--yes`` skips the
    question; without a terminal it is required), then act on exactly the runs shown. A run
    that changed in between is skipped and counted. ``--dry-run`` shows and stops."""
    settings = settings_from(args)
    action = BulkAction(args.action)
    query = query_from(args)
    if not _filtered(query):
        raise ConfigError(
            f"runs {action} needs a filter (--status, --type, --since, --until, --error, "
            "--payload): it will not act on every run"
        )
    if not 1 <= args.max <= MAX_BULK:
        raise ConfigError(f"--max must be between 1 and {MAX_BULK}")
    async with connected(settings) as db:
        preview = await db.ops.bulk(action, query=query, limit=args.max, dry_run=True)
        count = len(preview.selected)
        more = " (the filter selects more: run it again for the rest)" if preview.truncated else ""
        if args.dry_run or not count:
            if args.json:
                print_json(preview)
            else:
                print(f"{action} would change {count} run(s){more}")
                for run_id in preview.selected:
                    print(run_id)
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"runs {action} changes {count} run(s): pass --yes to confirm")
            print(f"{action} {count} run(s){more}? [y/N] ", end="", file=sys.stderr, flush=True)
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                print("nothing done", file=sys.stderr)
                return 1
        result = await db.ops.bulk(action, ids=preview.selected, limit=args.max)
    if args.json:
        print_json(result)
    else:
        changed = "cancelled" if action is BulkAction.CANCEL else "redriven"
        skipped = f"; {len(result.skipped)} changed meanwhile, skipped" if result.skipped else ""
        print(f"{changed} {len(result.done)} run(s){skipped}{more}")
    return 0


def _bulk_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max", type=int, default=MAX_BULK, help=f"act on at most this many (<= {MAX_BULK})"
    )
    p.add_argument("--dry-run", action="store_true", help="show what would change, change none")
    p.add_argument("--yes", action="store_true", help="act without asking")


ACTIONS["cancel"] = (bulk_action, "cancel the selected pending or running runs", _bulk_options)
ACTIONS["redrive"] = (bulk_action, "give the selected failed runs fresh attempts", lambda p: None)


async def _dispatch(args: argparse.Namespace) -> int:
    handler = ACTIONS[args.action][0]
    return await handler(args)


def add_parser(sub: Any) -> None:
    """Register ``workfleet runs [ACTION] [filters]``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "runs",
        help="find runs by status, type, time, error or payload; list them or pipe their ids",
        description="Find runs by status, type, creation time, error text or payload, a page "
        "at a time (newest first, keyset paging); list them, or print their ids for a pipe:\n\n"
        "  workfleet runs --status failed --type 'billing.%' --since 2h --error timeout\n"
        "  workfleet runs redrive --status failed --type 'billing.%' --error timeout --dry-run\n"
        "  workfleet runs cancel --type 'media.%' --since 1h --yes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="actions: " + "; ".join(f"{k}: {v[1]}" for k, v in ACTIONS.items()),
    )
    p.add_argument("action", nargs="?", default="list", choices=sorted(ACTIONS))
    common(p)
    add_filters(p)
    for _handler, _help, options in ACTIONS.values():
        options(p)
    p.set_defaults(handler=_dispatch)
