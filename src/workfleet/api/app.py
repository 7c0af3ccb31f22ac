"""The ASGI application of ``workfleet api``: ``/api/v1`` (the REST API), ``/ui`` (the console),
``/health`` and ``/livez`` (no key needed), and the OpenAPI document at ``/api/v1/openapi.json``
(browsable at ``/api/v1/docs``).

:func:`create_app` takes its collaborators whole (the operations façade and the API settings),
so tests build it over any store; :mod:`workfleet.api.server` is the composition root that
opens the pool and serves it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse

from workfleet import __version__
from workfleet.api import problems
from workfleet.api.auth import Keys
from workfleet.api.deps import API_PREFIX
from workfleet.api.middleware import AccessLog, BodyLimit
from workfleet.api.routes import ROUTERS
from workfleet.api.schemas import Health
from workfleet.errors import StoreError
from workfleet.operations import Operations
from workfleet.settings import ApiSettings


def create_app(ops: Operations, settings: ApiSettings, *, console: bool = True) -> FastAPI:
    """The API (and, with ``console``, the web console) over ``ops``."""
    app = FastAPI(
        title="workfleet",
        version=__version__,
        summary="Record, browse and act on Postgres-backed runs.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.ops = ops
    app.state.api_settings = settings
    app.state.keys = Keys(settings)
    problems.install(app)

    async def health() -> JSONResponse:
        """Ready when the database answers; never needs a key."""
        try:
            await ops.reads.db_now()
        except StoreError:
            body = Health(status="unavailable", database=False)
            return JSONResponse(body.model_dump(), status_code=503)
        return JSONResponse(Health(status="ok", database=True).model_dump())

    async def livez() -> dict[str, str]:
        """The process serves requests; never depends on the database."""
        return {"status": "ok"}

    for path in ("/health", f"{API_PREFIX}/health"):
        app.add_api_route(
            path,
            health,
            methods=["GET"],
            tags=["health"],
            response_model=Health,
            responses={503: {"model": Health}},
        )
    app.add_api_route("/livez", livez, methods=["GET"], tags=["health"])
    for router in ROUTERS:
        app.include_router(router)
    if console:
        from workfleet.api.console import mount_console

        mount_console(app)

        async def home() -> RedirectResponse:
            return RedirectResponse("/ui/", status_code=307)

        app.add_api_route("/", home, methods=["GET"], include_in_schema=False)
    # outermost first: the body limit sees bytes before anything parses them
    app.add_middleware(AccessLog)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
