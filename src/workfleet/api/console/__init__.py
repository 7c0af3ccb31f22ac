"""The web console under ``/ui``: server-rendered pages (Jinja2, autoescaped) over the
operations façade, with vendored htmx for smoother navigation; every page reads and every
action works with JavaScript off. Pages: :mod:`~workfleet.api.console.views`; actions:
:mod:`~workfleet.api.console.actions`; what they share: :mod:`~workfleet.api.console.web`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response


def mount_console(app: FastAPI) -> None:
    """Add the console's routes and static files to ``app``."""
    from urllib.parse import quote

    from workfleet.api.console import actions, views, web

    app.include_router(actions.router)  # before views: /runs/{id}/{action} is an action
    app.include_router(views.router)
    app.mount("/ui/static", views.static(), name="ui-static")

    async def sign_in(request: Request, exc: Exception) -> Response:
        back = exc.back if isinstance(exc, web.SignIn) else "/ui/"
        return RedirectResponse(f"/ui/login?next={quote(back)}", status_code=303)

    app.add_exception_handler(web.SignIn, sign_in)
