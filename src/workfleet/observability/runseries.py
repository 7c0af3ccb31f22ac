"""The per-run metrics: queue wait, run duration and outcomes per (prefix, type), kept as plain
numbers and exported at scrape time.

Every run observes three of them. prometheus_client's children take a lock per increment (two
per histogram observation, plus a Python-level bucket search), about 2 µs of a no-op run's CPU;
here an observation is a C ``bisect`` and two additions. The exposition is the same as
prometheus_client's ``Histogram`` and ``Counter`` with these names, labels and buckets.

Contract: one writer, the event loop's thread (the lease loops observe here, nothing else
does). A scrape from another thread reads a copy of each series; it may miss an observation
being made, never report a bucket count above ``_count``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from workfleet.models import Outcome

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
OUTCOMES = tuple(Outcome)
_OUTCOME_INDEX = {outcome: i for i, outcome in enumerate(OUTCOMES)}


class RunSeries:
    """The numbers of one (prefix, type): bucket counts (the last one is ``+Inf``), sums and a
    count per outcome (every outcome from the first run on, so failure ratios have a series)."""

    __slots__ = ("duration", "duration_sum", "finished", "wait", "wait_sum")

    def __init__(self) -> None:
        self.wait = [0] * (len(WAIT_BUCKETS) + 1)
        self.wait_sum = 0.0
        self.duration = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.finished = [0] * len(OUTCOMES)


class RunMetrics(Collector):
    """``workfleet_queue_wait_seconds``, ``workfleet_run_duration_seconds`` and
    ``workfleet_runs_finished_total``, labelled by ``prefix`` and ``type``."""

    def __init__(self) -> None:
        self._series: dict[str, dict[str, RunSeries]] = {}

    def _new(self, prefix: str, run_type: str) -> RunSeries:
        series = RunSeries()
        self._series.setdefault(prefix, {})[run_type] = series
        return series

    def series(self, prefix: str, run_type: str) -> RunSeries:
        by_type = self._series.get(prefix)
        found = None if by_type is None else by_type.get(run_type)
        return self._new(prefix, run_type) if found is None else found

    def started(self, prefix: str, run_type: str, queue_wait: float) -> None:
        """A run started ``queue_wait`` seconds after it was due (negative counts as 0)."""
        s = self.series(prefix, run_type)
        queue_wait = max(queue_wait, 0.0)
        s.wait[bisect_left(WAIT_BUCKETS, queue_wait)] += 1
        s.wait_sum += queue_wait

    def finished(self, prefix: str, run_type: str, outcome: Outcome, seconds: float) -> None:
        """An execution ended with ``outcome`` after ``seconds``."""
        s = self.series(prefix, run_type)
        s.finished[_OUTCOME_INDEX[outcome]] += 1
        s.duration[bisect_left(DURATION_BUCKETS, seconds)] += 1
        s.duration_sum += seconds

    # --- exposition ---------------------------------------------------------------------------

    def describe(self) -> list[Metric]:
        # the names, so the registry refuses a second collector claiming them
        return list(self._families([]))

    def collect(self) -> Iterator[Metric]:
        rows = [
            (prefix, run_type, s)
            for prefix, by_type in list(self._series.items())
            for run_type, s in list(by_type.items())
        ]
        return iter(self._families(rows))

    def _families(self, rows: Sequence[tuple[str, str, RunSeries]]) -> list[Metric]:
        labels = ["prefix", "type"]
        wait = HistogramMetricFamily(
            "workfleet_queue_wait_seconds", "Time from run_at (due) to start.", labels=labels
        )
        duration = HistogramMetricFamily(
            "workfleet_run_duration_seconds", "Executor wall time per execution.", labels=labels
        )
        finished = CounterMetricFamily(
            "workfleet_runs_finished",
            "Executions finished, by outcome.",
            labels=["prefix", "type", "outcome"],
        )
        for prefix, run_type, s in rows:
            # copies first: the loop's thread may add to the lists while this one reads them
            wait_counts, wait_sum = list(s.wait), s.wait_sum
            duration_counts, duration_sum = list(s.duration), s.duration_sum
            finished_counts = list(s.finished)
            key = [prefix, run_type]
            wait.add_metric(key, _buckets(WAIT_BUCKETS, wait_counts), wait_sum)
            duration.add_metric(key, _buckets(DURATION_BUCKETS, duration_counts), duration_sum)
            for outcome, count in zip(OUTCOMES, finished_counts, strict=True):
                finished.add_metric([prefix, run_type, str(outcome)], count)
        return [finished, duration, wait]


def _buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs as Prometheus wants them, ``+Inf`` last."""
    out = []
    total = 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        total += count
        out.append(("+Inf" if math.isinf(bound) else repr(float(bound)), float(total)))
    return out
