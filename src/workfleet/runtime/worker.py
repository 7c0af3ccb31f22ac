"""The worker process: the composition root that wires the concrete pieces together.

One process holds one connection pool, one LISTEN connection, one HTTP server and one lease
loop per configured prefix. SIGTERM (or SIGINT) starts a graceful stop: readiness goes false,
fetching stops, in-flight runs drain for up to ``drain_timeout``, the rest are cancelled and
their leases released; the process then exits 0. A second signal skips the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from workfleet import __version__
from workfleet.db.listener import Listener
from workfleet.db.maintenance import PgMaintenance
from workfleet.db.migrate import require_schema
from workfleet.db.pool import open_pool
from workfleet.db.schedules import PgSchedules
from workfleet.db.store import PgStore
from workfleet.db.workflows import PgWorkflowStore
from workfleet.discovery import Discovery
from workfleet.errors import ConfigError, StoreError
from workfleet.models import RegistryEntry
from workfleet.observability.http import Health, HttpServer, LoopWatchdog
from workfleet.observability.logging import get_logger
from workfleet.observability.metrics import Metrics, PoolCollector
from workfleet.observability.observers import FanOut, NullObserver
from workfleet.runtime.engine import Engine
from workfleet.runtime.loops import default_pool_size, loop_specs
from workfleet.runtime.maintenance import maintenance_loop, pending_loop, ticker_loop
from workfleet.runtime.signals import held_stop_signals
from workfleet.settings import Settings
from workfleet.store import MaintenanceStore, Observer, ScheduleStore

# allocations (net of frees) between two collections of the youngest generation, at least
GC_YOUNG_THRESHOLD = 10_000


class Worker:
    """Everything one ``workfleet worker`` process runs."""

    def __init__(
        self,
        settings: Settings,
        discovery: Discovery,
        *,
        observer: Observer | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.discovery = discovery
        self.loops = loop_specs(settings.runtime, discovery.registry)
        self.resolved = settings.resolved_dsn()
        self.log = get_logger(worker_id=settings.worker_id)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, __version__)
        self.metrics.listener_enabled.set(0 if settings.poll_only else 1)
        for loop in self.loops:
            self.metrics.init_prefix(str(loop.pattern))
        for failure in discovery.failures:
            self.metrics.plugin_failed(failure.plugin.name)
        self._db = _DbHealth()
        self.observer: Observer = FanOut(
            [self.metrics, self._db, *([observer] if observer else [])]
        )
        self.health = Health()
        self.watchdog = LoopWatchdog()
        self.engine: Engine | None = None
        self.store: PgStore | None = None
        self._pool: AsyncConnectionPool[Any] | None = None
        self._recheck: asyncio.Task[None] | None = None
        self.listener: Listener | None = None
        self.http: HttpServer | None = None
        self._stop = asyncio.Event()
        self._signals = 0
        self._fast = False

    # --- signals ---------------------------------------------------------------------------------

    def request_stop(self, fast: bool = False) -> None:
        """Begin a graceful stop (``fast``: skip the drain)."""
        self.health.draining = True
        self._fast = self._fast or fast
        self._stop.set()

    def _on_signal(self, signame: str) -> None:
        self._signals += 1
        if self._signals == 1:
            self.log.info(
                "stop requested; draining runs in flight",
                signal=signame,
                drain_timeout=self.settings.drain_timeout,
            )
            self.request_stop()
        else:
            self.log.warning("second stop signal: cancelling runs now", signal=signame)
            self.request_stop(fast=True)
            if self.engine is not None:
                self.engine.force()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig.name)
        # a stop requested while the process started (see workfleet.runtime.signals)
        for name in held_stop_signals():
            self._on_signal(name)

    # --- running ---------------------------------------------------------------------------------

    async def run(self) -> int:
        s = self.settings
        pool = await open_pool(
            self.resolved.conninfo,
            min_size=s.pool_min_size,
            max_size=s.pool_max_size or default_pool_size(self.loops, self.discovery.registry),
            connect_timeout=s.connect_timeout,
        )
        self._pool = pool
        tasks: list[asyncio.Task[Any]] = []
        registered: PgMaintenance | None = None
        try:
            async with pool.connection() as conn:
                await require_schema(conn, self.resolved.schema)
            store = PgStore(
                pool,
                self.resolved.schema,
                lifecycle_events=self.settings.run_events == "all",
                observer=self.observer,
            )
            self.store = store
            maintenance = PgMaintenance(pool, self.resolved.schema, observer=self.observer)
            schedules = PgSchedules(pool, self.resolved.schema, observer=self.observer)
            self.registry.register(PoolCollector(pool.get_stats))
            await store.upsert_registry(
                [
                    RegistryEntry(str(p), spec.description)
                    for p, spec in sorted(self.discovery.registry.executors.items())
                ]
            )
            await maintenance.register_worker(
                s.worker_id, socket.gethostname(), os.getpid(), __version__, self.served()
            )
            # a start that fails from here on must not leave this worker listed as live
            registered = maintenance
            workflows = PgWorkflowStore(pool, self.resolved.schema)
            engine = Engine(
                store, self.discovery.registry, s.runtime, self.observer, self.log, workflows
            )
            self.engine = engine
            for lp in engine.loops:
                self.observer.in_flight(lp.name, 0, lp.concurrency)
            self.health.db_ok = lambda: self._db.ready
            self.health.listener_ok = lambda: self.listener is None or self.listener.connected
            self.health.alive = self._alive
            # before the side tasks: a port that is taken stops the start with nothing to undo
            await self._serve_http()
            side_stop = asyncio.Event()
            tasks.extend(self._side_tasks(engine, store, maintenance, schedules, side_stop))
            # Everything alive now (modules, plugins, pool, engine) lives as long as the process:
            # keep it out of the cyclic collector's scans. Measured on a no-op drain: the
            # collector's passes over these objects cost about 10 us of CPU per run.
            gc.freeze()
            # The runs in flight (tasks, sessions, outcomes) are freed by reference counting,
            # not by the collector, but the default young-generation threshold (700 net
            # allocations) still scanned them a few times per claim: about 2 us per run.
            young, middle, old = gc.get_threshold()
            gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
            engine_task = asyncio.create_task(engine.run(), name="engine")
            self.health.started = True
            self.log.info(
                "worker started",
                prefixes=[f"{lp.name}={lp.concurrency}" for lp in engine.loops],
                executors=[str(p) for p in self.discovery.registry.patterns],
                schema=self.resolved.schema,
                listen=not s.poll_only,
                metrics=(f"http://{s.http_host}:{self.http.port}/metrics" if self.http else None),
            )
            await self._wait_stop_or_crash(engine_task, tasks)
            await engine.stop(0.0 if self._fast else s.drain_timeout)
            await engine_task
            side_stop.set()
            if self.listener is not None:
                self.listener.stop()
            registered = None
            try:
                await maintenance.remove_worker(s.worker_id)
            except StoreError as exc:
                self.log.warning("could not deregister worker", error=str(exc))
            self.log.info("worker stopped")
            return 0
        finally:
            if registered is not None:
                with contextlib.suppress(StoreError, TimeoutError):
                    await asyncio.wait_for(registered.remove_worker(s.worker_id), 5)
            await self._close(pool, tasks)

    async def _serve_http(self) -> None:
        s = self.settings
        if not s.http_enabled:
            return
        self.http = HttpServer(self.registry, self.health, s.http_host, s.http_port)
        try:
            await self.http.start()
        except OSError as exc:
            self.http = None
            raise ConfigError(
                f"cannot serve /metrics on {s.http_host}:{s.http_port}: {exc.strerror}",
                env_var="WORKFLEET_HTTP_PORT",
            ) from None

    def served(self) -> list[str]:
        """The patterns this worker's lease loops claim (each prefix intersected with the
        executors), not every executor installed: `workfleet status` tells from them which
        pending types no live worker serves."""
        return sorted({str(p) for loop in self.loops for p in loop.patterns})

    async def _recheck_pool(self, engine: Engine) -> None:
        """After the listener reconnected: test every idle connection (the lanes' too), so the
        pool replaces the dead ones before the loops claim again."""
        try:
            if self.store is not None:
                await self.store.lanes.release_idle()
            if self._pool is not None:
                await self._pool.check()
        except Exception as exc:  # noqa: BLE001 - readiness must come back whatever happened
            self.log.warning("checking the pool after a reconnection failed", error=repr(exc))
        finally:
            self._db.checking = False
            self._recheck = None
        engine.wake_all()

    async def _close(self, pool: AsyncConnectionPool[Any], tasks: list[asyncio.Task[Any]]) -> None:
        if self._recheck is not None:
            tasks.append(self._recheck)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.stop()
        if self.store is not None:
            await self.store.close()  # the connections its lanes keep
        await pool.close()

    def _side_tasks(
        self,
        engine: Engine,
        store: PgStore,
        maintenance: MaintenanceStore,
        schedules: ScheduleStore,
        stop: asyncio.Event,
    ) -> list[asyncio.Task[Any]]:
        """Watchdog, listener, cron ticker and maintenance: started beside the engine."""
        s = self.settings
        tasks = [asyncio.create_task(self.watchdog.run(), name="watchdog")]
        if not s.poll_only:
            self.listener = self._make_listener(engine)
            tasks.append(asyncio.create_task(self.listener.run(), name="listener"))
        if s.schedules_enabled:
            ticker = ticker_loop(schedules, s.maintenance, engine.notify_inserted, stop, self.log)
            tasks.append(asyncio.create_task(ticker, name="schedules"))
        side = maintenance_loop(
            store, maintenance, s.maintenance, s.worker_id, stop, self.log, engine.wake_all
        )
        tasks.append(asyncio.create_task(side, name="maintenance"))
        if s.pending_metrics_interval > 0:
            gauges = pending_loop(
                maintenance,
                [lp.pattern for lp in self.loops],
                s.pending_metrics_interval,
                self.metrics.set_pending,
                stop,
                self.log,
                self.metrics.set_waiting,
            )
            tasks.append(asyncio.create_task(gauges, name="pending-gauges"))
        return tasks

    async def _wait_stop_or_crash(
        self, engine_task: asyncio.Task[None], tasks: list[asyncio.Task[Any]]
    ) -> None:
        """Wait for a stop request; a side task that dies stops the worker loudly."""
        stop_task = asyncio.create_task(self._stop.wait())
        watched = {stop_task, engine_task, *tasks}
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        for t in done:
            if t is stop_task:
                continue
            exc = t.exception() if not t.cancelled() else None
            self.log.error(
                "background task ended unexpectedly; stopping", task=t.get_name(), error=repr(exc)
            )
            self.health.draining = True
            raise RuntimeError(f"background task {t.get_name()} died: {exc!r}") from exc

    def _alive(self) -> tuple[bool, str]:
        if not self.watchdog.healthy():
            return False, "event loop blocked"
        engine = self.engine
        if engine is not None:
            for t in (*engine.loop_tasks, *engine.side_tasks):
                if t.done() and not engine.draining:
                    return False, f"task {t.get_name()} died"
            wedged = engine.wedged_loops()
            if wedged and not engine.draining:
                return False, (
                    f"every slot of {', '.join(wedged)} is held by an executor thread "
                    "that ignored its timeout"
                )
        return True, "ok"

    def _make_listener(self, engine: Engine) -> Listener:
        def connected(reconnect: bool) -> None:
            self.observer.listener(True, reconnect)
            if reconnect and self._pool is not None and self._recheck is None:
                # the server may have restarted: every pooled connection may be dead. Until
                # they are tested, /readyz says not ready and the loops do not claim (a claim on
                # a dead connection fails and backs off, seconds with a big pool)
                self._db.checking = True
                self._recheck = asyncio.create_task(self._recheck_pool(engine), name="recheck")
            else:
                engine.wake_all()

        return Listener(
            self.resolved.conninfo,
            self.resolved.schema,
            on_inserted=engine.notify_inserted,
            on_cancelled=engine.notify_cancelled,
            on_any=engine.wake_all,
            on_connected=connected,
            on_disconnected=lambda: self.observer.listener(False, False),
            log=self.log,
            connect_timeout=self.settings.connect_timeout,
        )


class _DbHealth(NullObserver):
    """Readiness input: the database answered the last claim, and the pool is not being
    checked after a reconnection."""

    def __init__(self) -> None:
        self.ok = True
        self.checking = False

    @property
    def ready(self) -> bool:
        return self.ok and not self.checking

    def claimed(self, prefix: str, count: int, seconds: float) -> None:
        self.ok = True

    def claim_failed(self, prefix: str) -> None:
        self.ok = False


def stuck_executor_threads(wait: float = 1.0) -> list[str]:
    """Executor threads still alive after shutdown (sync executors that ignored cancellation)."""
    deadline = time.monotonic() + wait
    stuck = []
    for thread in threading.enumerate():
        if thread.name.startswith("workfleet-exec") and thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                stuck.append(thread.name)
    return stuck


async def serve(
    settings: Settings,
    discovery: Discovery,
    *,
    install_signals: bool = True,
    on_started: Callable[[Worker], None] | None = None,
) -> int:
    """Run a worker until stopped; return the process exit code (0 after a graceful stop)."""
    worker = Worker(settings, discovery)
    if install_signals:
        worker.install_signal_handlers()
    if on_started is not None:
        on_started(worker)
    return await worker.run()
