"""What the runtime reports as it works: the seam for metrics and for tests' signals.

The runtime calls an :class:`Observer` at each step; Prometheus metrics implement it, and
:class:`RecordingObserver` lets tests *wait for* "3 runs finished" instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from workfleet.models import Outcome

WakeSource = Literal["notify", "poll", "schedule", "slot", "retry", "start"]


class Observer(Protocol):
    """Runtime events. Implementations must be cheap and never raise."""

    def claimed(self, prefix: str, count: int, seconds: float) -> None: ...
    def claim_failed(self, prefix: str) -> None: ...
    def run_started(self, prefix: str, run_type: str, queue_wait: float) -> None: ...
    def run_finished(
        self, prefix: str, run_type: str, outcome: Outcome, seconds: float
    ) -> None: ...
    def woke(self, prefix: str, source: WakeSource) -> None: ...
    def in_flight(self, prefix: str, count: int, concurrency: int) -> None: ...
    def heartbeat(self, count: int) -> None: ...
    def lease_lost(self, prefix: str) -> None: ...
    def listener(self, connected: bool, reconnect: bool) -> None: ...
    def drained(self) -> None: ...


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

    def drained(self) -> None:
        pass


class FanOut(NullObserver):
    """Forwards every event to several observers."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = list(observers)

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

    def drained(self) -> None:
        for o in self.observers:
            o.drained()


class RecordingObserver(NullObserver):
    """Counts events and lets a test await a condition on them (a *test signal*)."""

    def __init__(self) -> None:
        self.outcomes: Counter[Outcome] = Counter()
        self.started: list[str] = []
        self.wakes: Counter[str] = Counter()
        self.claims = 0
        self.claim_errors = 0
        self.heartbeats = 0
        self.leases_lost = 0
        self.listener_connects = 0
        self.listener_reconnects = 0
        self.listener_connected = False
        self.is_drained = False
        self._changed = asyncio.Condition()

    def _poke(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        with contextlib.suppress(RuntimeError):  # no running loop: nothing awaits there
            asyncio.get_running_loop().create_task(notify())

    def claimed(self, prefix: str, count: int, seconds: float) -> None:
        self.claims += count
        self._poke()

    def claim_failed(self, prefix: str) -> None:
        self.claim_errors += 1
        self._poke()

    def run_started(self, prefix: str, run_type: str, queue_wait: float) -> None:
        self.started.append(run_type)
        self._poke()

    def run_finished(self, prefix: str, run_type: str, outcome: Outcome, seconds: float) -> None:
        self.outcomes[outcome] += 1
        self._poke()

    def woke(self, prefix: str, source: WakeSource) -> None:
        self.wakes[source] += 1

    def heartbeat(self, count: int) -> None:
        self.heartbeats += 1
        self._poke()

    def lease_lost(self, prefix: str) -> None:
        self.leases_lost += 1
        self._poke()

    def listener(self, connected: bool, reconnect: bool) -> None:
        self.listener_connected = connected
        if connected:
            self.listener_connects += 1
        if reconnect:
            self.listener_reconnects += 1
        self._poke()

    def drained(self) -> None:
        self.is_drained = True
        self._poke()

    @property
    def finished(self) -> int:
        return sum(self.outcomes.values())

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once ``predicate()`` holds; raise ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)
