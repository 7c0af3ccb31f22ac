"""A tiny HTTP server for ``/metrics`` and the probes; no web framework needed for four GETs.

``/livez`` never depends on Postgres (a database outage must not restart every pod): it fails
only when the event loop is blocked or a lease loop stopped making progress. ``/readyz`` is true
once started, while the pool and listener are up and until shutdown begins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


@dataclass(slots=True)
class Health:
    """Flags the worker flips as it starts, runs and stops."""

    started: bool = False
    draining: bool = False
    db_ok: Callable[[], bool] = field(default=lambda: True)
    listener_ok: Callable[[], bool] = field(default=lambda: True)
    alive: Callable[[], tuple[bool, str]] = field(default=lambda: (True, "ok"))

    def ready(self) -> tuple[bool, str]:
        if not self.started:
            return False, "starting"
        if self.draining:
            return False, "draining"
        if not self.db_ok():
            return False, "database unavailable"
        if not self.listener_ok():
            return False, "listener disconnected"
        return True, "ok"


class HttpServer:
    """Serves ``/metrics``, ``/livez``, ``/readyz`` and ``/startupz`` on one port."""

    def __init__(self, registry: CollectorRegistry, health: Health, host: str, port: int) -> None:
        self.registry = registry
        self.health = health
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sockets = self._server.sockets or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def route(self, path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == "/livez":
            ok, why = self.health.alive()
        elif path == "/readyz":
            ok, why = self.health.ready()
        elif path == "/startupz":
            ok, why = self.health.started, ("ok" if self.health.started else "starting")
        else:
            return 404, "text/plain", b"not found\n"
        return (200 if ok else 503), "text/plain", (why + "\n").encode()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else "/"
            status, ctype, body = self.route(path)
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


class LoopWatchdog:
    """Measures event-loop lag; liveness fails when the loop is blocked for too long."""

    def __init__(self, interval: float = 1.0, max_lag: float = 30.0) -> None:
        self.interval = interval
        self.max_lag = max_lag
        self.last_tick = time.monotonic()
        self.lag = 0.0

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.lag = max(0.0, now - before - self.interval)
            self.last_tick = now

    def healthy(self) -> bool:
        return time.monotonic() - self.last_tick < self.max_lag + self.interval
