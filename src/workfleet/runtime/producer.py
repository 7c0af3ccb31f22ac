"""The lease loop (producer) of one type prefix: fetch only as many runs as there are free slots.

It wakes on a (debounced) NOTIFY for one of its types, on a freed slot after a full batch, on
a jittered poll, and at the time the next future run of its types becomes due — whichever comes
first. It never claims a type no executor of this worker can run (its :class:`ClaimFilter` is
the loop's pattern intersected with the executors' patterns).

A slot frees as soon as its executor returns, before the outcome is written: the next claim
overlaps the previous batch's write. What that lets through is bounded: the runs a loop holds
leases on (executing plus awaiting their outcome write) never exceed twice its concurrency, so
a slow database stalls claiming instead of piling up leases that could expire unwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from workfleet.errors import StoreError
from workfleet.models import ClaimedRun
from workfleet.patterns import TypePattern
from workfleet.runtime.observer import Observer, WakeSource
from workfleet.store import ClaimFilter, RunStore

StartRun = Callable[[ClaimedRun, "LeaseLoop"], None]


class LeaseLoop:
    """Claims runs for one prefix and hands each to ``start_run``."""

    def __init__(
        self,
        *,
        name: str,
        patterns: Sequence[TypePattern],
        filt: ClaimFilter,
        concurrency: int,
        store: RunStore,
        worker_id: str,
        lease_seconds: float,
        poll_interval: float,
        fetch_cooldown: float,
        start_run: StartRun,
        observer: Observer,
        log: Any,
    ) -> None:
        self.name = name
        self.patterns = list(patterns)
        self.filt = filt
        self.concurrency = concurrency
        self.store = store
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.fetch_cooldown = fetch_cooldown
        self.start_run = start_run
        self.observer = observer
        self.log = log
        self.active = 0
        # outcomes decided but not yet written; their rows are still leased to us
        self.unwritten = 0
        self._throttled = False
        self._wake = asyncio.Event()
        self._wake_source: WakeSource = "start"
        self._saturated = False
        self._stopping = False
        self.last_progress = time.monotonic()

    # --- signals from the outside ---------------------------------------------------------

    def matches(self, run_type: str) -> bool:
        return any(p.matches(run_type) for p in self.patterns)

    def wake(self, source: WakeSource = "notify") -> None:
        if not self._wake.is_set():
            self._wake_source = source
            self._wake.set()

    def slot_freed(self, *, awaiting_write: bool = False) -> None:
        """An executor is done; with ``awaiting_write``, :meth:`write_done` follows."""
        self.active -= 1
        if awaiting_write:
            self.unwritten += 1
        self.observer.in_flight(self.name, self.active, self.concurrency)
        if self._saturated:
            # the last fetch filled every slot, so more work is probably waiting
            self.wake("slot")

    def write_done(self) -> None:
        """An outcome announced by ``slot_freed(awaiting_write=True)`` was written (or dropped)."""
        self.unwritten -= 1
        if self._throttled and self.free_slots() > 0:
            self.wake("slot")

    def free_slots(self) -> int:
        """Runs the next claim may take: free executor slots, less any write backlog beyond
        one concurrency's worth (leases held stay at most twice the concurrency)."""
        return self.concurrency - self.active - max(0, self.unwritten - self.concurrency)

    def stop(self) -> None:
        """Stop fetching; runs already started are the runtime's to drain."""
        self._stopping = True
        self._wake.set()

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        error_delay = 0.1
        last_fetch = float("-inf")
        while not self._stopping:
            self.last_progress = time.monotonic()
            free = self.free_slots()
            self._throttled = free < self.concurrency - self.active
            timeout = self.poll_interval * random.uniform(0.9, 1.1)  # noqa: S311
            if free > 0:
                if self._wake_source == "slot":
                    # freed slots come in bursts as a batch of outcomes lands: let the burst
                    # finish so one claim fills them all
                    await asyncio.sleep(0)
                else:
                    # debounce notifications: a burst of inserts costs one claim
                    cooldown = last_fetch + self.fetch_cooldown - time.monotonic()
                    if cooldown > 0:
                        await asyncio.sleep(cooldown)
                self._wake.clear()
                last_fetch = time.monotonic()
                try:
                    claimed = await self.store.claim(
                        self.worker_id, self.filt, free, self.lease_seconds
                    )
                except StoreError as exc:
                    self.observer.claim_failed(self.name)
                    self.log.warning(
                        "claim failed",
                        prefix=self.name,
                        error=str(exc),
                        retry_in=round(error_delay, 2),
                    )
                    await self._sleep(error_delay)
                    error_delay = min(error_delay * 2, self.poll_interval)
                    continue
                error_delay = 0.1
                self.observer.claimed(self.name, len(claimed), time.monotonic() - last_fetch)
                self._saturated = len(claimed) == free
                for run in claimed:
                    self.active += 1
                    self.start_run(run, self)
                if claimed:
                    self.observer.in_flight(self.name, self.active, self.concurrency)
                if not self._saturated:
                    if claimed:
                        # pickup latency is one round trip, not two: two steps of the event
                        # loop (run task, then executor task) take the started runs into their
                        # executors before this loop asks for the next due time
                        await asyncio.sleep(0)
                        await asyncio.sleep(0)
                    due = await self._next_due()
                    if due is not None:
                        # sleep until the next run is due rather than a whole poll interval
                        timeout = min(timeout, max(due, 0.0) + 0.005)
            await self._wait(timeout)

    async def _wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
            if not self._stopping:
                self.observer.woke(self.name, self._wake_source)
        except TimeoutError:
            self._wake_source = "poll"
            self.observer.woke(self.name, "poll")

    async def _next_due(self) -> float | None:
        try:
            return await self.store.next_due(self.filt)
        except StoreError:
            return None  # the next claim meets (and reports) the same database problem

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
