"""A test observer: counts runtime events and lets a test *wait for* them (a test signal).

Tests wait on "3 runs finished" instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable

from workfleet.models import Outcome
from workfleet.observability.observers import NullObserver
from workfleet.store import WakeSource


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
        self.bad_rows: Counter[str] = Counter()
        self.steps: Counter[tuple[str, str]] = Counter()  # (kind, outcome)
        self.suspensions: Counter[str] = Counter()  # by wait kind
        self.signal_waits: list[float] = []
        self.fan_ins: list[int] = []
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

    def bad_row(self, statement: str) -> None:
        self.bad_rows[statement] += 1
        self._poke()

    def drained(self) -> None:
        self.is_drained = True
        self._poke()

    def step_finished(self, run_type: str, kind: str, outcome: str) -> None:
        self.steps[(kind, outcome)] += 1
        self._poke()

    def workflow_suspended(self, run_type: str, kind: str) -> None:
        self.suspensions[kind] += 1
        self._poke()

    def signal_taken(self, run_type: str, waited_seconds: float) -> None:
        self.signal_waits.append(waited_seconds)
        self._poke()

    def children_gathered(self, run_type: str, count: int) -> None:
        self.fan_ins.append(count)
        self._poke()

    @property
    def finished(self) -> int:
        return sum(self.outcomes.values())

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once ``predicate()`` holds; raise ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)
