"""The console's actions: sign in and out, and the admin actions (cancel, redrive, bulk redrive
by selection or by filter, pause and resume a schedule).

Every action is two steps that work without JavaScript: a GET (or a form POST without
``confirm``) shows what will happen, and only the confirming POST, carrying the session's CSRF
token, acts; then the browser is redirected to the result (POST/redirect/GET). Read-only keys
get no action buttons, and a forged request from one is refused with 403.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workfleet.api.auth import SESSION_COOKIE
from workfleet.api.console import web
from workfleet.api.console.views import Filters
from workfleet.errors import InvalidRequestError
from workfleet.operations import BulkAction, Reason, parse_id
from workfleet.store import MAX_BULK

router = APIRouter(prefix="/ui", include_in_schema=False)


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: form.getlist(k) if k == "ids" else form.get(k) for k in form}


def _local(target: str | None) -> str:
    # only a path of this console: a sign-in link must not send anyone elsewhere
    if target and target.startswith("/ui/") and "//" not in target and "\\" not in target:
        return target
    return "/ui/"


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return web.page(request, "login.html", None, next=_local(request.query_params.get("next")))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await _form(request)
    key = str(form.get("key") or "")
    target = _local(str(form.get("next") or ""))
    principal = web.keys(request).check(key) if key else None
    if principal is None:
        refused = web.page(request, "login.html", None, next=target, error="That key is not valid.")
        refused.status_code = 401
        return refused
    settings = web.settings(request)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        web.keys(request).session_cookie(principal),
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/ui",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    web.require_user(request)
    if not web.keys(request).check_csrf(request.cookies.get(SESSION_COOKIE), str(form.get("csrf"))):
        return web.back_to("/ui/", "Sign-out needs a fresh page; try again.", bad=True)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


# --- one run -------------------------------------------------------------------------------


def _run_id(text: str) -> uuid.UUID | None:
    try:
        return parse_id(text)
    except ValueError:
        return None


# what the run page's buttons do; each is confirmed on its own page first
RUN_ACTIONS = ("cancel", "redrive", "resume", "signal")
DONE = {
    "cancel": "Run cancelled.",
    "redrive": "Run redriven: pending again.",
    "resume": "Workflow resumed: its failed steps run again, finished ones are kept.",
}


async def _send_signal(request: Request, rid: uuid.UUID, form: dict[str, Any]) -> Response:
    """Send the signal the form names; its payload is JSON (empty: null)."""
    back = f"/ui/runs/{rid}"
    name = str(form.get("name", "")).strip()
    raw = str(form.get("payload", "")).strip()
    key = str(form.get("idempotency_key", "")).strip() or None
    try:
        payload = json.loads(raw) if raw else None
    except json.JSONDecodeError as exc:
        return web.back_to(back, f"The payload is not JSON: {exc.msg}.", bad=True)
    try:
        result = await web.ops(request).signal(rid, name, payload, key)
    except InvalidRequestError as exc:
        return web.back_to(back, f"Not sent: {exc}", bad=True)
    if result.reason is Reason.NOT_FOUND:
        return web.back_to("/ui/runs", f"No run {rid}.", bad=True)
    if not result.done:
        return web.back_to(back, f"Not sent: the run is {result.status}.", bad=True)
    if result.duplicate:
        return web.back_to(back, f"Signal {name!r} was sent before with this key: nothing new.")
    return web.back_to(back, f"Signal {name!r} sent (#{result.signal_id}).")


@router.get("/runs/{run_id}/{action}", response_class=HTMLResponse)
async def confirm_run_action(request: Request, run_id: str, action: str) -> Response:
    who = web.require_user(request)
    rid = _run_id(run_id)
    record = None if rid is None else await web.ops(request).get(rid)
    if action not in RUN_ACTIONS or record is None:
        response = web.page(request, "missing.html", who, what="run", ident=run_id)
        response.status_code = 404
        return response
    if action == "signal":
        return web.page(request, "signal.html", who, run=record)
    return web.page(request, "confirm_run.html", who, run=record, action=action)


@router.post("/runs/{run_id}/{action}")
async def run_action(request: Request, run_id: str, action: str) -> Response:
    form = await _form(request)
    web.require_admin(request, form)
    rid = _run_id(run_id)
    if rid is None or action not in RUN_ACTIONS:
        return web.back_to("/ui/runs", f"No run {run_id}.", bad=True)
    ops = web.ops(request)
    if action == "signal":
        return await _send_signal(request, rid, form)
    act = {"cancel": ops.cancel, "redrive": ops.redrive, "resume": ops.resume}[action]
    result = await act(rid)
    if result.done:
        return web.back_to(f"/ui/runs/{rid}", DONE[action])
    if result.reason is Reason.NOT_FOUND:
        return web.back_to("/ui/runs", f"No run {rid}.", bad=True)
    return web.back_to(
        f"/ui/runs/{rid}", f"Not done: the run is {result.status} ({result.reason}).", bad=True
    )


# --- bulk redrive of failed runs ----------------------------------------------------------


@router.post("/bulk/redrive", response_class=HTMLResponse)
async def bulk_redrive(request: Request) -> Response:
    """Without ``confirm``: a dry run shown for confirmation; with it: redrive and report."""
    form = await _form(request)
    who = web.require_admin(request, form)
    ops = web.ops(request)
    by_filter = form.get("scope") == "filter"
    # back to the list as it was filtered (the filter travels in the form's query string)
    back = "/ui/failed" + (f"?{request.url.query}" if request.url.query else "")
    ids: list[uuid.UUID] | None = None
    query = None
    filters = None
    if by_filter:
        filters = Filters(request)  # the filter travels in the query string of the form
        if filters.errors:
            return web.back_to(back, "; ".join(filters.errors), bad=True)
        query = filters.query
    else:
        ids = [i for i in (_run_id(str(t)) for t in form.get("ids") or []) if i is not None]
        if not ids:
            return web.back_to(back, "Select runs to redrive first.", bad=True)
        ids = ids[:MAX_BULK]
    result = await ops.bulk(
        BulkAction.REDRIVE, ids=ids, query=query, dry_run=form.get("confirm") != "yes"
    )
    if result.dry_run:
        return web.page(
            request,
            "confirm_bulk.html",
            who,
            result=result,
            by_filter=by_filter,
            filters=filters,
            ids=[str(i) for i in result.selected],
            query=request.url.query,
        )
    message = f"Redrove {len(result.done)} failed run(s)."
    if result.skipped:
        message += f" {len(result.skipped)} skipped (no longer failed)."
    if result.truncated:
        message += f" More match the filter: run it again for the next {MAX_BULK}."
    return web.back_to(back, message)


# --- schedules -----------------------------------------------------------------------------


@router.post("/schedules/{schedule_id}/{action}")
async def schedule_action(request: Request, schedule_id: str, action: str) -> Response:
    web.require_admin(request, await _form(request))
    try:
        sid = parse_id(schedule_id, "schedule")
    except ValueError:
        return web.back_to("/ui/schedules", f"No schedule {schedule_id}.", bad=True)
    ops = web.ops(request)
    if action == "pause":
        result = await ops.pause_schedule(sid)
    elif action == "resume":
        result = await ops.resume_schedule(sid)
    else:
        return web.back_to("/ui/schedules", f"Unknown action {action}.", bad=True)
    if result.done:
        return web.back_to("/ui/schedules", f"Schedule {action}d.")
    detail = result.problem or str(result.reason)
    return web.back_to("/ui/schedules", f"Not done: {detail}.", bad=True)
