"""Heartbeats: every lease this worker holds is extended in one statement per interval.

Runs awaiting their outcome write are still leased to the worker and are extended too. A lease
found lost (cancelled by a user, reclaimed after expiry, another worker's now) is reported to
its run's session, which stops the execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from workfleet.errors import StoreError
from workfleet.observability.logging import Logger
from workfleet.runtime.execution import RunSession
from workfleet.store import Observer, RunQueue


class Heartbeater:
    """Extends the leases of the sessions ``sessions()`` returns, every ``interval`` seconds."""

    def __init__(
        self,
        queue: RunQueue,
        worker_id: str,
        lease_seconds: float,
        sessions: Callable[[], Iterable[RunSession]],
        observer: Observer,
        log: Logger,
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.sessions = sessions
        self.observer = observer
        self.log = log

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Beat every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
                return
            except TimeoutError:
                pass
            await self.beat()

    async def beat(self) -> None:
        """Extend every lease in flight in one statement; report the lost ones."""
        sessions = {s.lease.run_id: s for s in self.sessions()}
        if not sessions:
            return
        try:
            results = await self.queue.heartbeat_many(
                self.worker_id, [s.lease for s in sessions.values()], self.lease_seconds
            )
        except StoreError as exc:
            self.log.warning("heartbeat failed", error=str(exc), runs=len(sessions))
            return
        self.observer.heartbeat(len(sessions))
        for result in results:
            session = sessions.get(result.run_id)
            if not result.held and session is not None:
                session.lost(result.status)
