"""What the routes share: the operations façade and the API settings, from the app's state
(set once by :func:`workfleet.api.app.create_app`), and query-parameter parsing."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from workfleet.api.problems import Problem
from workfleet.api.schemas import check_json, check_text
from workfleet.models import RunStatus
from workfleet.operations import Operations
from workfleet.patterns import TypePattern
from workfleet.settings import ApiSettings
from workfleet.store import RunCursor, RunQuery

# Every REST route lives under this prefix; routers name it in full, so a route's template (the
# access log's ``route``) is the whole path.
API_PREFIX = "/api/v1"


def _ops(request: Request) -> Operations:
    ops: Operations = request.app.state.ops
    return ops


def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.api_settings
    return settings


Ops = Annotated[Operations, Depends(_ops)]
Settings = Annotated[ApiSettings, Depends(_settings)]


def encode_cursor(cursor: RunCursor) -> str:
    """The API's page cursor: :meth:`RunCursor.encode` in URL-safe base64, so it travels in a
    query string unescaped (the plain form holds ``+`` and ``:``)."""
    return base64.urlsafe_b64encode(cursor.encode().encode()).decode().rstrip("=")


def decode_cursor(text: str, field: str = "query.cursor") -> RunCursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        return RunCursor.decode(raw)
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, f"{field}: not a page cursor", field=field) from None


def run_id(text: str, field: str = "path.id") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Problem(404, f"no run {text!r}: not a run id (a UUID)", field=field) from None


def patterns(texts: list[str], field: str) -> tuple[TypePattern, ...]:
    out = []
    for text in texts:
        if problem := check_text(text, field):
            raise Problem(422, problem, field=field)
        try:
            out.append(TypePattern.parse(text))
        except ValueError as exc:
            raise Problem(422, f"{field}: {exc}", field=field) from None
    return tuple(out)


def prefix_patterns(prefixes: list[str], field: str = "query.prefix") -> tuple[TypePattern, ...]:
    """A literal type prefix (``billing.``) selects the types starting with it; a trailing
    ``%`` is allowed and changes nothing."""
    return patterns([p.removesuffix("%") + "%" for p in prefixes], field)


def payload_filter(text: str | None, field: str = "query.payload") -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise Problem(422, f"{field}: not JSON", field=field) from None
    if problem := check_json(value, field):
        raise Problem(422, problem, field=field)
    return value


def run_query(
    *,
    types: list[str],
    prefixes: list[str],
    statuses: list[RunStatus],
    since: datetime | None,
    until: datetime | None,
    payload: Any,
    error: str | None,
    where: str = "query",
) -> RunQuery:
    if problem := check_text(error, f"{where}.error"):
        raise Problem(422, problem, field=f"{where}.error")
    if since is not None and since.tzinfo is None:
        raise Problem(422, "created_after must carry a time zone", field=f"{where}.created_after")
    if until is not None and until.tzinfo is None:
        raise Problem(422, "created_before must carry a time zone", field=f"{where}.created_before")
    return RunQuery(
        statuses=tuple(dict.fromkeys(statuses)),
        types=patterns(types, f"{where}.type") + prefix_patterns(prefixes, f"{where}.prefix"),
        since=since,
        until=until,
        payload=payload,
        error=error,
    )
