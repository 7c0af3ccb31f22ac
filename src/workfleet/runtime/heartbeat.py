"""Heartbeats: every lease this worker holds is extended in one statement per interval.

Runs awaiting their outcome write are still leased to the worker and are extended too. A lease
found lost (cancelled by a user, reclaimed after expiry, another worker's now) is reported to
its run's session, which stops the execution. A row the batch statement cannot write does not
stop the others' extensions (see :meth:`Heartbeater._one_by_one`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from workfleet.errors import StoreDataError, StoreError
from workfleet.models import HeartbeatResult, Lease
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
        leases = [s.lease for s in sessions.values()]
        try:
            results = await self.queue.heartbeat_many(self.worker_id, leases, self.lease_seconds)
        except StoreDataError as exc:
            results = await self._one_by_one(leases, exc)
        except StoreError as exc:
            self.log.warning("heartbeat failed", error=str(exc), runs=len(sessions))
            return
        self.observer.heartbeat(len(sessions))
        for result in results:
            session = sessions.get(result.run_id)
            if not result.held and session is not None:
                session.lost(result.status)

    async def _one_by_one(self, leases: list[Lease], exc: StoreDataError) -> list[HeartbeatResult]:
        """A row the batch cannot extend (its UPDATE refused: a constraint added after the row
        was written) stopped every lease's extension: extend them one by one. The refused ones
        are counted as bad rows and left alone; their leases expire and the sweep takes them."""
        results: list[HeartbeatResult] = []
        for lease in leases:
            try:
                results += await self.queue.heartbeat_many(
                    self.worker_id, [lease], self.lease_seconds
                )
            except StoreDataError as refused:
                self.observer.bad_row("heartbeat_many")
                self.log.error(
                    "a lease cannot be extended; it will expire",
                    run_id=str(lease.run_id),
                    error=str(refused).splitlines()[0],
                    batch_error=str(exc).splitlines()[0],
                )
            except StoreError as failed:
                self.log.warning("heartbeat failed", error=str(failed))
                break
        return results
