"""Metrics match docs/metrics.md; probes answer as documented; logs never carry secrets."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from workfleet.models import Outcome
from workfleet.observability.http import Health, HttpServer, LoopWatchdog
from workfleet.observability.metrics import Metrics, PoolCollector
from workfleet.observability.observers import FanOut, NullObserver
from workfleet.observability.runseries import DURATION_BUCKETS, WAIT_BUCKETS
from workfleet.store import WakeSource

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(workfleet_\w+)` \| (\w+) \|\s*([\w, ]*?)\s*\|", re.MULTILINE)


def _exercised() -> CollectorRegistry:
    registry = CollectorRegistry()
    m = Metrics(registry, "1.2.3")
    registry.register(
        PoolCollector(
            lambda: {
                "pool_min": 1,
                "pool_max": 4,
                "pool_size": 2,
                "pool_available": 1,
                "requests_waiting": 0,
            }
        )
    )
    m.claimed("billing.%", 3, 0.01)
    m.claim_failed("billing.%")
    m.run_started("billing.%", "billing.invoice.v1", 0.5)
    m.run_finished("billing.%", "billing.invoice.v1", Outcome.SUCCEEDED, 0.2)
    m.woke("billing.%", "notify")
    m.in_flight("billing.%", 1, 8)
    m.heartbeat(1)
    m.lease_lost("billing.%")
    m.listener(True, True)
    m.listener_enabled.set(1)
    m.set_pending("billing.%", 12, 4.5)
    m.set_waiting("billing.%", "signal", 3)
    m.step_finished("billing.order.v1", "step", "succeeded")
    m.workflow_suspended("billing.order.v1", "signal")
    m.signal_taken("billing.order.v1", 0.02)
    m.children_gathered("billing.order.v1", 10)
    m.plugin_failed("broken")
    return registry


def _exposed() -> dict[str, tuple[str, set[str]]]:
    text = generate_latest(_exercised()).decode()
    out: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        for sample in family.samples:
            if family.type in ("counter", "info") and not sample.name.endswith("_created"):
                name = sample.name
                kind = "gauge" if family.type == "info" else family.type
                out[name] = (kind, labels)
        if family.type not in ("counter", "info"):
            out[family.name] = (family.type, labels)
    return out


def test_documented_metrics_are_exactly_the_exposed_ones() -> None:
    documented = {
        name: (kind, {label.strip() for label in labels.split(",") if label.strip()})
        for name, kind, labels in ROW.findall(DOC.read_text())
    }
    assert documented == _exposed()


def test_metrics_have_no_unbounded_labels() -> None:
    text = generate_latest(_exercised()).decode()
    assert "run_id" not in text
    assert 'outcome="succeeded"' in text and 'version="1.2.3"' in text


def test_per_run_series_expose_what_prometheus_client_would() -> None:
    """The per-run metrics are plain numbers exported at scrape time: their exposition must be
    exactly that of prometheus_client's Histogram and Counter given the same observations."""
    ours = CollectorRegistry()
    m = Metrics(ours, "1.2.3")
    ref = CollectorRegistry()
    wait = Histogram(
        "workfleet_queue_wait_seconds",
        "Time from run_at (due) to start.",
        ["prefix", "type"],
        buckets=WAIT_BUCKETS,
        registry=ref,
    )
    duration = Histogram(
        "workfleet_run_duration_seconds",
        "Executor wall time per execution.",
        ["prefix", "type"],
        buckets=DURATION_BUCKETS,
        registry=ref,
    )
    finished = Counter(
        "workfleet_runs_finished",
        "Executions finished, by outcome.",
        ["prefix", "type", "outcome"],
        registry=ref,
    )
    runs = [
        ("a.%", "a.x.v1", 0.0, Outcome.SUCCEEDED, 0.005),  # on a bucket's bound: counted in it
        ("a.%", "a.x.v1", -3.0, Outcome.FAILED, 0.0051),  # a negative wait counts as 0
        ("a.%", "a.y.v1", 7200.0, Outcome.RETRIED, 1e6),  # past the last bound: +Inf only
        ("b.%", "a.x.v1", 2.5, Outcome.SUCCEEDED, 2.5),
    ]
    for prefix, run_type, waited, outcome, seconds in runs:
        m.run_started(prefix, run_type, waited)
        m.run_finished(prefix, run_type, outcome, seconds)
        wait.labels(prefix, run_type).observe(max(waited, 0.0))
        duration.labels(prefix, run_type).observe(seconds)
        for each in Outcome:
            finished.labels(prefix, run_type, str(each))
        finished.labels(prefix, run_type, str(outcome)).inc()

    def families(registry: CollectorRegistry) -> dict[str, list[tuple[str, object, float]]]:
        names = ("workfleet_queue_wait", "workfleet_run_duration", "workfleet_runs_finished")
        return {
            f.name: sorted((s.name, sorted(s.labels.items()), s.value) for s in f.samples)
            for f in text_string_to_metric_families(generate_latest(registry).decode())
            if f.name.startswith(names)
        }

    assert families(ours) == families(ref)
    assert len(families(ours)) == 3


async def _get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = (await reader.read()).decode()
    writer.close()
    return int(data.split()[1]), data.split("\r\n\r\n", 1)[1]


async def test_probes_follow_the_worker_state() -> None:
    health = Health()
    server = HttpServer(_exercised(), health, "127.0.0.1", 0)
    await server.start()
    try:
        assert (await _get(server.port, "/startupz"))[0] == 503
        assert (await _get(server.port, "/readyz")) == (503, "starting\n")
        assert (await _get(server.port, "/livez"))[0] == 200
        health.started = True
        assert (await _get(server.port, "/startupz"))[0] == 200
        assert (await _get(server.port, "/readyz"))[0] == 200
        health.db_ok = lambda: False
        assert (await _get(server.port, "/readyz")) == (503, "database unavailable\n")
        assert (await _get(server.port, "/livez"))[0] == 200, "a DB outage is not a restart"
        health.draining = True
        assert (await _get(server.port, "/readyz")) == (503, "draining\n")
        health.alive = lambda: (False, "task loop billing.% died")
        assert (await _get(server.port, "/livez"))[0] == 503
        status, body = await _get(server.port, "/metrics")
        assert status == 200 and "workfleet_runs_claimed_total" in body
        assert (await _get(server.port, "/nope"))[0] == 404
    finally:
        await server.stop()


def _get_blocking(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_livez_answers_503_while_the_event_loop_is_blocked() -> None:
    watchdog = LoopWatchdog(interval=0.05, max_lag=0.2)
    health = Health(alive=lambda: (True, "ok") if watchdog.healthy() else (False, "blocked"))
    server = HttpServer(_exercised(), health, "127.0.0.1", 0)
    await server.start()
    ticking = asyncio.create_task(watchdog.run())
    try:
        await asyncio.sleep(0.1)
        assert await asyncio.to_thread(_get_blocking, server.port, "/livez") == (200, "ok\n")
        answers: list[tuple[int, str]] = []
        probe = threading.Timer(0.8, lambda: answers.append(_get_blocking(server.port, "/livez")))
        probe.start()
        time.sleep(1.2)  # noqa: ASYNC251 - on purpose: a CPU-bound executor holding the loop
        probe.join()
        assert answers == [(503, "blocked\n")], "the probe answers although the loop cannot"
        await asyncio.sleep(0.2)
        assert await asyncio.to_thread(_get_blocking, server.port, "/livez") == (200, "ok\n")
    finally:
        ticking.cancel()
        await server.stop()


class _Counting(NullObserver):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.woken: list[str] = []

    def run_started(self, prefix: str, run_type: str, queue_wait: float) -> None:
        self.started.append(run_type)

    def woke(self, prefix: str, source: WakeSource) -> None:
        self.woken.append(source)


def test_fan_out_reaches_every_handler_once_and_only_handlers() -> None:
    """FanOut hands an event straight to its only handler; with two, both get it once; an
    observer that ignores an event (NullObserver's method) is not called for it."""
    one, two = _Counting(), _Counting()
    single = FanOut([one, NullObserver()])
    single.run_started("a.%", "a.x.v1", 0.0)
    single.woke("a.%", "notify")
    single.run_finished("a.%", "a.x.v1", Outcome.SUCCEEDED, 0.1)  # nobody handles it
    assert (one.started, one.woken) == (["a.x.v1"], ["notify"])
    both = FanOut([one, two])
    both.run_started("a.%", "a.y.v1", 0.0)
    assert (one.started, two.started) == (["a.x.v1", "a.y.v1"], ["a.y.v1"])
    FanOut([]).run_started("a.%", "a.z.v1", 0.0)
