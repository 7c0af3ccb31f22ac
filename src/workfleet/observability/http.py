"""The probe and metrics server: ``/metrics``, ``/livez``, ``/readyz``, ``/startupz``.

It runs in its own thread, not on the event loop, so that it still answers when the loop is
blocked (a CPU-bound async executor, a stuck C call): ``/livez`` then says 503 "event loop
blocked" instead of timing out, and ``/metrics`` keeps showing what happened up to then.

``/livez`` never depends on Postgres (a database outage must not restart every pod): it fails
only when the event loop is blocked or a lease loop or core task died. ``/readyz`` is true
once started, while the database and the listener are up, and until shutdown begins.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


@dataclass(slots=True)
class Health:
    """Flags the worker flips as it starts, runs and stops (read from the server's thread)."""

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


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        status, ctype, body = self.server.owner.route(self.path.split("?", 1)[0])
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the worker's own log lines."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpServer


class HttpServer:
    """Serves ``/metrics`` and the probes on one port, from a background thread."""

    def __init__(self, registry: CollectorRegistry, health: Health, host: str, port: int) -> None:
        self.registry = registry
        self.health = health
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        """Bind (``OSError`` if the port is taken) and serve in a daemon thread."""
        server = _Server((self.host, self.port), _Handler)
        server.owner = self
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="workfleet-http"
        )
        self._thread.daemon = True
        self._thread.start()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()

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
