"""Errors as RFC 9457 problem details (``application/problem+json``), naming the field at fault.

Every error the API answers goes through here: a refused request is a 4xx with a message a
client can act on, a database outage a 503, and nothing a client sends should reach the
catch-all 500 (the property tests hold the API to that). Bodies never echo the key, and the
logs never carry payloads: a 500 is logged with the route template and the exception type.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workfleet.errors import InvalidRequestError, StoreDataError, StoreError
from workfleet.observability.logging import get_logger

PROBLEM = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

log = get_logger(component="api")


class Problem(Exception):  # noqa: N818 - it is raised to answer with a problem document
    """Answer with ``status`` and a problem document; ``field`` names the request field at
    fault (``body.payload``, ``query.limit``); ``extra`` adds members (the 409's ``id``)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    detail: str,
    *,
    field: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = errors
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise exc
    errors = [
        # the message and where, never the input (it may be a payload or a key)
        {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem_response(
        422, f"{first['field']}: {first['message']}", field=first["field"], errors=errors
    )


async def _on_problem(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, Problem):
        raise exc
    return problem_response(
        exc.status, exc.detail, field=exc.field, headers=exc.headers, **exc.extra
    )


async def _on_http(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, str(exc.detail), headers=headers)


async def _on_invalid(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(422, str(exc))


async def _on_store_data(request: Request, exc: Exception) -> JSONResponse:
    # the driver's text may quote the refused value: say which statement, not what
    log.warning("api.store_refused", route=_route(request), error=type(exc.__cause__).__name__)
    return problem_response(422, "the database refused a value of this request")


async def _on_store(request: Request, exc: Exception) -> JSONResponse:
    log.error("api.store_unavailable", route=_route(request), error=type(exc).__name__)
    return problem_response(503, "the database is unavailable; retry later")


async def _on_recursion(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(400, "the request body is nested too deeply", field="body")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("api.unexpected", route=_route(request), error=type(exc).__name__, exc_info=exc)
    return problem_response(500, "internal error; the server's log has the details")


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "?"))


def install(app: FastAPI) -> None:
    """Register the problem handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(InvalidRequestError, _on_invalid)
    app.add_exception_handler(StoreDataError, _on_store_data)
    app.add_exception_handler(StoreError, _on_store)
    app.add_exception_handler(RecursionError, _on_recursion)
    app.add_exception_handler(Exception, _on_unexpected)
