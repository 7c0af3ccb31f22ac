"""ASGI middleware of the API: the request body limit and the access log.

The body limit is enforced on the bytes as they arrive (a missing or lying ``Content-Length``
changes nothing), before any parsing, and answered 413 as a problem document. The access log
names the route's *template* (``/api/v1/workflows/{run_id}``) and never the query string or
body, which may carry payload filters or keys.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workfleet.api.problems import PROBLEM
from workfleet.observability.logging import get_logger

log = get_logger(component="api")


class _TooLarge(HTTPException):
    """Raised from ``receive`` as the body grows too large: FastAPI passes HTTP exceptions
    raised while it reads a body through to the problem handlers (other errors become 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the request body is larger than {limit} bytes",
            "field": "body",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _send_413(send, self.limit)
                return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not started:
                await _send_413(send, self.limit)


class AccessLog:
    """One log line per request: method, route template, status, milliseconds, key name."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route: Any = scope.get("route")
            state = scope.get("state") or {}
            who = state.get("principal")
            log.info(
                "api.request",
                method=scope.get("method"),
                route=getattr(route, "path", None) or "unmatched",
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 1),
                key=getattr(who, "name", None),
            )
