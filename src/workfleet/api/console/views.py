"""The console's pages (GET, readable with JavaScript off): overview per prefix, runs with
filters and keyset pages, one run, schedules, workers and their leases, failed runs.

Every page reads through bounded statements: keyset pages, counts capped at
``WORKFLEET_API__COUNT_CAP``, stats from capped counts; nothing counts a whole table. The
actions (POST, with confirmation and CSRF) are in :mod:`workfleet.api.console.actions`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from workfleet.api.console import web, workflow_view
from workfleet.api.schemas import check_json
from workfleet.models import Event, RunStatus
from workfleet.operations import CANCELLABLE, REDRIVABLE, parse_id
from workfleet.patterns import TypePattern
from workfleet.store import MAX_PAGE, RunQuery

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50


def static() -> StaticFiles:
    return StaticFiles(directory=Path(__file__).parent / "static")


class Filters:
    """The runs filters of a page's query string, parsed leniently: what cannot be read is
    reported on the page (``errors``) and left out of the query, never a 500."""

    def __init__(self, request: Request, *, fixed_status: RunStatus | None = None) -> None:
        params = request.query_params
        self.errors: list[str] = []
        self.type = params.get("type", "").strip()
        self.status = params.get("status", "").strip()
        self.since = params.get("since", "").strip()
        self.until = params.get("until", "").strip()
        self.payload = params.get("payload", "").strip()
        self.error = params.get("error", "").strip()
        self.after = params.get("after") or None
        types: tuple[TypePattern, ...] = ()
        if self.type:
            try:
                types = (TypePattern.parse(self.type),)
            except ValueError as exc:
                self.errors.append(f"type: {exc}")
        statuses: tuple[RunStatus, ...] = ()
        if fixed_status is not None:
            statuses = (fixed_status,)
        elif self.status:
            try:
                statuses = (RunStatus(self.status),)
            except ValueError:
                self.errors.append(f"status: {self.status!r} is not a run status")
        payload: Any = None
        if self.payload:
            try:
                payload = json.loads(self.payload)
                if problem := check_json(payload, "payload"):
                    self.errors.append(problem)
                    payload = None
            except (ValueError, RecursionError):
                self.errors.append('payload: not JSON (e.g. {"customer": "c1"})')
        self.query = RunQuery(
            statuses=statuses,
            types=types,
            since=self._time(self.since, "since"),
            until=self._time(self.until, "until"),
            payload=payload,
            error=self._text(self.error, "error"),
        )

    def _time(self, text: str, name: str) -> datetime | None:
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.errors.append(f"{name}: not a time (2026-01-31T12:00 or with +00:00)")
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # the console shows UTC; read it back as UTC
        return moment

    def _text(self, text: str, name: str) -> str | None:
        if "\x00" in text:
            self.errors.append(f"{name}: contains a NUL character")
            return None
        return text or None

    def link(self, **changes: str | None) -> str:
        """This page's query string with ``changes`` (None removes a key)."""
        values: dict[str, str | None] = {
            "type": self.type,
            "status": self.status,
            "since": self.since,
            "until": self.until,
            "payload": self.payload,
            "error": self.error,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> Response:
    who = web.require_user(request)
    ops = web.ops(request)
    settings = web.settings(request)
    stats = await ops.stats(window_seconds=settings.stats_window_seconds, cap=settings.count_cap)
    workers = await ops.status_reads.live_workers()
    failed = await ops.count_runs(RunQuery(statuses=(RunStatus.FAILED,)), cap=settings.count_cap)
    return web.page(
        request,
        "overview.html",
        who,
        stats=stats,
        workers=workers,
        failed=failed,
        window=settings.stats_window_seconds,
        cap=settings.count_cap,
    )


async def _runs_page(request: Request, template: str, filters: Filters, **extra: Any) -> Response:
    who = web.require_user(request)
    ops = web.ops(request)
    settings = web.settings(request)
    runs: list[Any] = []
    next_cursor = None
    count = None
    if not filters.errors:
        try:
            page = await ops.list_runs(filters.query, limit=PAGE_SIZE, after=filters.after)
        except ValueError as exc:  # a hand-edited cursor
            filters.errors.append(str(exc))
        else:
            runs = page.runs
            next_cursor = None if page.next is None else page.next.encode()
            count = await ops.count_runs(filters.query, cap=settings.count_cap)
    return web.page(
        request,
        template,
        who,
        runs=runs,
        filters=filters,
        next_cursor=next_cursor,
        count=count,
        statuses=[str(s) for s in RunStatus],
        first_page=filters.after is None,
        **extra,
    )


@router.get("/runs", response_class=HTMLResponse)
async def runs(request: Request) -> Response:
    return await _runs_page(request, "runs.html", Filters(request))


@router.get("/failed", response_class=HTMLResponse)
async def failed(request: Request) -> Response:
    return await _runs_page(
        request, "failed.html", Filters(request, fixed_status=RunStatus.FAILED), max_bulk=MAX_PAGE
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run(request: Request, run_id: str) -> Response:
    who = web.require_user(request)
    ops = web.ops(request)
    try:
        detail = await ops.inspect(parse_id(run_id))
    except ValueError:
        detail = None
    if detail is None:
        response = web.page(request, "missing.html", who, what="run", ident=run_id)
        response.status_code = 404
        return response
    return web.page(
        request,
        "run.html",
        who,
        run=detail.run,
        events=[_split(e) for e in detail.events],
        can_cancel=detail.run.status in CANCELLABLE,
        can_redrive=detail.run.status in REDRIVABLE and detail.run.deleted_at is None,
        can_resume=detail.workflow is not None and detail.run.status is RunStatus.FAILED,
        can_signal=detail.workflow is not None and not detail.run.status.is_terminal,
        **workflow_view.context(detail.workflow, datetime.now(UTC)),
    )


def _split(event: Event) -> tuple[Event, str | None, Any]:
    """An event as shown: its traceback (when its data has one) apart from the rest."""
    data = event.data
    if isinstance(data, dict) and isinstance(data.get("traceback"), str):
        rest = {k: v for k, v in data.items() if k != "traceback"}
        return event, data["traceback"], rest
    return event, None, data


@router.get("/schedules", response_class=HTMLResponse)
async def schedules(request: Request) -> Response:
    who = web.require_user(request)
    return web.page(
        request, "schedules.html", who, schedules=await web.ops(request).list_schedules()
    )


@router.get("/workers", response_class=HTMLResponse)
async def workers(request: Request) -> Response:
    """Live workers and the runs each holds a lease on (the newest 1000 leased runs)."""
    who = web.require_user(request)
    ops = web.ops(request)
    live = await ops.status_reads.live_workers()
    leased = await ops.list_runs(RunQuery(statuses=(RunStatus.LEASED,)), limit=MAX_PAGE)
    held: dict[str, list[Any]] = defaultdict(list)
    for record in leased.runs:
        held[record.leased_by or "?"].append(record)
    return web.page(
        request,
        "workers.html",
        who,
        workers=live,
        held=dict(held),
        others=sorted(set(held) - {w.worker_id for w in live}),
        more=leased.next is not None,
    )
