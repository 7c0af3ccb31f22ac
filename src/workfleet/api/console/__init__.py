"""The web console under ``/ui`` (see :mod:`workfleet.api.console.views`)."""

from __future__ import annotations

from fastapi import FastAPI


def mount_console(app: FastAPI) -> None:
    """Add the console's routes and static files to ``app``."""
    from workfleet.api.console.views import router, static

    app.include_router(router)
    app.mount("/ui/static", static(), name="ui-static")
