"""What the console's pages share: the templates (Jinja2, autoescaped: user data is always text,
a payload holding ``<script>`` shows as those characters), who is signed in, and the headers
every page carries.

A page's principal comes from the signed session cookie (:class:`~workfleet.api.auth.Keys`);
without one, a page redirects to the sign-in form. Every POST carries the CSRF token of the
session (an HMAC of the cookie), and the cookie is ``SameSite=Strict`` and ``HttpOnly``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from workfleet.api.auth import SESSION_COOKIE, Keys, Principal
from workfleet.api.problems import Problem
from workfleet.operations import Operations
from workfleet.settings import ApiSettings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.autoescape = True  # every template, whatever its name

# No inline script or style runs, whatever a payload holds; htmx is served from /ui/static.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


templates.env.filters["pretty"] = _pretty
templates.env.filters["when"] = _when
templates.env.filters["age"] = _age
templates.env.filters["q"] = lambda text: quote(str(text), safe="")


@dataclass(frozen=True, slots=True)
class User:
    """The signed-in principal and the CSRF token its forms carry."""

    principal: Principal
    csrf: str

    @property
    def admin(self) -> bool:
        return self.principal.admin


def keys(request: Request) -> Keys:
    found: Keys = request.app.state.keys
    return found


def ops(request: Request) -> Operations:
    found: Operations = request.app.state.ops
    return found


def settings(request: Request) -> ApiSettings:
    found: ApiSettings = request.app.state.api_settings
    return found


def user(request: Request) -> User | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = keys(request).session(cookie)
    if principal is None or cookie is None:
        return None
    request.state.principal = principal
    return User(principal, keys(request).csrf_token(cookie))


class SignIn(Exception):  # noqa: N818 - raised to redirect to the sign-in page
    """No valid session: go to the sign-in form, then back."""

    def __init__(self, back: str) -> None:
        super().__init__(back)
        self.back = back


def require_user(request: Request) -> User:
    found = user(request)
    if found is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignIn(back)
    return found


def require_admin(request: Request, form: dict[str, Any]) -> User:
    """A signed-in admin whose form carries the session's CSRF token; 403 otherwise."""
    found = require_user(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not keys(request).check_csrf(cookie, str(form.get("csrf", ""))):
        raise Problem(403, "the form's CSRF token is missing or stale; reload the page")
    if not found.admin:
        raise Problem(403, f"key {found.principal.name!r} is read-only")
    return found


def page(request: Request, template: str, who: User | None, **context: Any) -> HTMLResponse:
    flash = request.query_params.get("flash")
    response = templates.TemplateResponse(
        request,
        template,
        {
            "user": who,
            "flash": flash,
            "flash_bad": request.query_params.get("bad") == "1",
            "path": request.url.path,
            **context,
        },
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def back_to(url: str, flash: str, *, bad: bool = False) -> Response:
    """After an action: see the result (POST/redirect/GET), with a one-line message."""
    sep = "&" if "?" in url else "?"
    target = f"{url}{sep}flash={quote(flash)}" + ("&bad=1" if bad else "")
    return RedirectResponse(target, status_code=303)
