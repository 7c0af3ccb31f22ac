"""Prometheus metrics: an :class:`Observer` writing into an injected ``CollectorRegistry``.

Names use the ``workfleet_`` prefix, base units and ``_total`` counters; labels are bounded
(``prefix``, ``type``, ``outcome``, ``source``), never run ids or error text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workfleet.models import Outcome
from workfleet.observability.observers import NullObserver
from workfleet.observability.runseries import DURATION_BUCKETS, WAIT_BUCKETS, RunMetrics
from workfleet.store import WakeSource

# the batch statements that count the rows they could not apply (see Observer.bad_row)
BAD_ROW_STATEMENTS = (
    "complete_many",
    "heartbeat_many",
    "reclaim_expired",
    "retention",
    "schedules",
)


class Metrics(NullObserver):
    """The worker's metrics. Create one per registry (tests pass a fresh registry)."""

    def __init__(self, registry: CollectorRegistry, version: str) -> None:
        # `_created` series double every counter's cardinality and no dashboard uses them
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.claimed_total = Counter(
            "workfleet_runs_claimed", "Runs leased by this worker.", ["prefix"], registry=registry
        )
        # queue wait, run duration and outcomes per (prefix, type): observed on every run
        self.runs = RunMetrics()
        registry.register(self.runs)
        self.in_flight_gauge = Gauge(
            "workfleet_runs_in_flight", "Runs executing now.", ["prefix"], registry=registry
        )
        self.concurrency_gauge = Gauge(
            "workfleet_concurrency",
            "Configured concurrency of the lease loop.",
            ["prefix"],
            registry=registry,
        )
        self.claim_duration = Histogram(
            "workfleet_claim_duration_seconds",
            "Duration of one claim statement.",
            ["prefix"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.claim_errors = Counter(
            "workfleet_claim_errors",
            "Claims that failed (database errors).",
            ["prefix"],
            registry=registry,
        )
        self.wakeups = Counter(
            "workfleet_wakeups",
            "Lease-loop wake-ups by source.",
            ["prefix", "source"],
            registry=registry,
        )
        self.listener_up = Gauge(
            "workfleet_listener_connected",
            "1 while the LISTEN connection is up.",
            registry=registry,
        )
        self.listener_reconnects = Counter(
            "workfleet_listener_reconnects",
            "LISTEN connection re-establishments.",
            registry=registry,
        )
        self.heartbeats = Counter(
            "workfleet_heartbeats",
            "Batched lease extensions (one per statement).",
            registry=registry,
        )
        self.bad_rows = Counter(
            "workfleet_bad_rows",
            "Rows a batch statement could not apply, failed or skipped on their own.",
            ["statement"],
            registry=registry,
        )
        for statement in BAD_ROW_STATEMENTS:
            self.bad_rows.labels(statement)
        self.lease_losses = Counter(
            "workfleet_lease_losses",
            "Runs whose lease was lost while executing.",
            ["prefix"],
            registry=registry,
        )
        self.listener_enabled = Gauge(
            "workfleet_listener_enabled",
            "1 when the worker uses LISTEN/NOTIFY, 0 in poll-only mode.",
            registry=registry,
        )
        self.pending = Gauge(
            "workfleet_runs_pending",
            "Runnable runs (pending, due, not deleted) matching the prefix; refreshed every "
            "WORKFLEET_PENDING_METRICS_INTERVAL seconds.",
            ["prefix"],
            registry=registry,
        )
        self.oldest_pending_age = Gauge(
            "workfleet_oldest_pending_age_seconds",
            "Seconds the oldest runnable run of the prefix has been due (0: none).",
            ["prefix"],
            registry=registry,
        )
        self.plugin_load_errors = Counter(
            "workfleet_plugin_load_errors",
            "Plugins that failed to import or validate (kept running with "
            "WORKFLEET_SKIP_BROKEN_PLUGINS), by entry point.",
            ["plugin"],
            registry=registry,
        )
        self.workflow_steps = Counter(
            "workfleet_workflow_steps",
            "Workflow checkpoints written, by the run's type, the step's kind and outcome "
            "(succeeded, failed, retried).",
            ["type", "kind", "outcome"],
            registry=registry,
        )
        self.workflow_suspensions = Counter(
            "workfleet_workflow_suspensions",
            "Workflow executions that gave their slot and lease back to wait, by wait kind.",
            ["type", "kind"],
            registry=registry,
        )
        self.signal_wait = Histogram(
            "workfleet_workflow_signal_wait_seconds",
            "Time a signal spent in the mailbox before a workflow took it (for a workflow "
            "already waiting: signal to resume).",
            ["type"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.fan_in = Histogram(
            "workfleet_workflow_fan_in_size",
            "Children per completed fan-in (wf.gather).",
            ["type"],
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000),
            registry=registry,
        )
        self.waiting = Gauge(
            "workfleet_workflows_waiting",
            "Workflows waiting (pending with a wait) matching the prefix, by wait kind; counted "
            "up to 100,000 per series; refreshed with the pending gauges.",
            ["prefix", "kind"],
            registry=registry,
        )
        self.build = Info("workfleet_build", "Build information.", registry=registry)
        self.build.info({"version": version})
        self._flight: dict[str, list[int]] = {}

    def init_prefix(self, prefix: str) -> None:
        """Export a lease loop's counters at 0 from the start.

        A labelled counter that appears only on its first increment makes ``rate()`` and
        ``increase()`` miss that increment and leaves alert expressions without a series.
        """
        self.claimed_total.labels(prefix)
        self.claim_errors.labels(prefix)
        self.lease_losses.labels(prefix)
        for source in get_args(WakeSource):
            self.wakeups.labels(prefix, source)

    def claimed(self, prefix: str, count: int, seconds: float) -> None:
        self.claim_duration.labels(prefix).observe(seconds)
        if count:
            self.claimed_total.labels(prefix).inc(count)

    def claim_failed(self, prefix: str) -> None:
        self.claim_errors.labels(prefix).inc()

    def run_started(self, prefix: str, run_type: str, queue_wait: float) -> None:
        self.runs.started(prefix, run_type, queue_wait)

    def run_finished(self, prefix: str, run_type: str, outcome: Outcome, seconds: float) -> None:
        self.runs.finished(prefix, run_type, outcome, seconds)

    def woke(self, prefix: str, source: WakeSource) -> None:
        self.wakeups.labels(prefix, source).inc()

    def in_flight(self, prefix: str, count: int, concurrency: int) -> None:
        # called on every claim and every freed slot: the gauges read the latest values when
        # scraped (set_function) instead of taking two locks per call
        flight = self._flight.get(prefix)
        if flight is None:
            flight = self._flight[prefix] = [count, concurrency]
            self.in_flight_gauge.labels(prefix).set_function(lambda: flight[0])
            self.concurrency_gauge.labels(prefix).set_function(lambda: flight[1])
        flight[0], flight[1] = count, concurrency

    def heartbeat(self, count: int) -> None:
        self.heartbeats.inc()

    def lease_lost(self, prefix: str) -> None:
        self.lease_losses.labels(prefix).inc()

    def bad_row(self, statement: str) -> None:
        self.bad_rows.labels(statement).inc()

    def listener(self, connected: bool, reconnect: bool) -> None:
        self.listener_up.set(1 if connected else 0)
        if reconnect:
            self.listener_reconnects.inc()

    def set_pending(self, prefix: str, pending: int, oldest_age_seconds: float) -> None:
        self.pending.labels(prefix).set(pending)
        self.oldest_pending_age.labels(prefix).set(oldest_age_seconds)

    def set_waiting(self, prefix: str, kind: str, count: int) -> None:
        self.waiting.labels(prefix, kind).set(count)

    def step_finished(self, run_type: str, kind: str, outcome: str) -> None:
        self.workflow_steps.labels(run_type, kind, outcome).inc()

    def workflow_suspended(self, run_type: str, kind: str) -> None:
        self.workflow_suspensions.labels(run_type, kind).inc()

    def signal_taken(self, run_type: str, waited_seconds: float) -> None:
        self.signal_wait.labels(run_type).observe(max(waited_seconds, 0.0))

    def children_gathered(self, run_type: str, count: int) -> None:
        self.fan_in.labels(run_type).observe(count)

    def plugin_failed(self, entry_point: str) -> None:
        self.plugin_load_errors.labels(entry_point).inc()


class PoolCollector(Collector):
    """Reads ``pool.get_stats()`` at scrape time: no patching of the pool."""

    def __init__(self, get_stats: Callable[[], dict[str, Any]]) -> None:
        self.get_stats = get_stats

    def collect(self) -> Iterable[GaugeMetricFamily]:
        stats = self.get_stats()
        family = GaugeMetricFamily(
            "workfleet_pool_connections",
            "Connection pool statistics (psycopg_pool).",
            labels=["stat"],
        )
        for key in ("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting"):
            if key in stats:
                family.add_metric([key], float(stats[key]))
        yield family
