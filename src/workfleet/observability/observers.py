"""Observers that are not metrics: one that ignores everything, one that fans out.

The :class:`~workfleet.store.Observer` port itself lives with the other ports in
:mod:`workfleet.store`; Prometheus metrics implement it in :mod:`workfleet.observability.metrics`
and tests' signals in :mod:`workfleet.testing`.
"""

from __future__ import annotations

from collections.abc import Sequence

from workfleet.models import Outcome
from workfleet.store import Observer, WakeSource


class NullObserver:
    """Observes nothing."""

    def claimed(self, prefix: str, count: int, seconds: float) -> None:
        pass

    def claim_failed(self, prefix: str) -> None:
        pass

    def run_started(self, prefix: str, run_type: str, queue_wait: float) -> None:
        pass

    def run_finished(self, prefix: str, run_type: str, outcome: Outcome, seconds: float) -> None:
        pass

    def woke(self, prefix: str, source: WakeSource) -> None:
        pass

    def in_flight(self, prefix: str, count: int, concurrency: int) -> None:
        pass

    def heartbeat(self, count: int) -> None:
        pass

    def lease_lost(self, prefix: str) -> None:
        pass

    def listener(self, connected: bool, reconnect: bool) -> None:
        pass

    def bad_row(self, statement: str) -> None:
        pass

    def drained(self) -> None:
        pass

    # --- durable workflows (workfleet.checkpoints.WorkflowObserver) -----------------------

    def step_finished(self, run_type: str, kind: str, outcome: str) -> None:
        pass

    def workflow_suspended(self, run_type: str, kind: str) -> None:
        pass

    def signal_taken(self, run_type: str, waited_seconds: float) -> None:
        pass

    def children_gathered(self, run_type: str, count: int) -> None:
        pass


class FanOut(NullObserver):
    """Forwards every event to several observers.

    An event goes straight to the one observer that handles it when only one does (a
    :class:`NullObserver` subclass that does not override the method ignores it): the worker's
    fan-out then costs nothing per run beyond the metrics' own call.
    """

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = list(observers)
        for name in _EVENTS:
            handlers = [o for o in self.observers if _handles(o, name)]
            if len(handlers) <= 1:
                # an instance attribute: found before the class's forwarding method
                target = handlers[0] if handlers else NullObserver()
                setattr(self, name, getattr(target, name))

    def claimed(self, prefix: str, count: int, seconds: float) -> None:
        for o in self.observers:
            o.claimed(prefix, count, seconds)

    def claim_failed(self, prefix: str) -> None:
        for o in self.observers:
            o.claim_failed(prefix)

    def run_started(self, prefix: str, run_type: str, queue_wait: float) -> None:
        for o in self.observers:
            o.run_started(prefix, run_type, queue_wait)

    def run_finished(self, prefix: str, run_type: str, outcome: Outcome, seconds: float) -> None:
        for o in self.observers:
            o.run_finished(prefix, run_type, outcome, seconds)

    def woke(self, prefix: str, source: WakeSource) -> None:
        for o in self.observers:
            o.woke(prefix, source)

    def in_flight(self, prefix: str, count: int, concurrency: int) -> None:
        for o in self.observers:
            o.in_flight(prefix, count, concurrency)

    def heartbeat(self, count: int) -> None:
        for o in self.observers:
            o.heartbeat(count)

    def lease_lost(self, prefix: str) -> None:
        for o in self.observers:
            o.lease_lost(prefix)

    def listener(self, connected: bool, reconnect: bool) -> None:
        for o in self.observers:
            o.listener(connected, reconnect)

    def bad_row(self, statement: str) -> None:
        for o in self.observers:
            o.bad_row(statement)

    def drained(self) -> None:
        for o in self.observers:
            o.drained()

    def step_finished(self, run_type: str, kind: str, outcome: str) -> None:
        for o in self.observers:
            o.step_finished(run_type, kind, outcome)

    def workflow_suspended(self, run_type: str, kind: str) -> None:
        for o in self.observers:
            o.workflow_suspended(run_type, kind)

    def signal_taken(self, run_type: str, waited_seconds: float) -> None:
        for o in self.observers:
            o.signal_taken(run_type, waited_seconds)

    def children_gathered(self, run_type: str, count: int) -> None:
        for o in self.observers:
            o.children_gathered(run_type, count)


_EVENTS = tuple(name for name in vars(NullObserver) if not name.startswith("_"))


def _handles(observer: Observer, name: str) -> bool:
    """False when ``observer`` inherits ``name`` from :class:`NullObserver` unchanged."""
    method = getattr(type(observer), name, None)
    return method is None or method is not getattr(NullObserver, name)
