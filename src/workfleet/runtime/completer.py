"""The completer: batches outcome writes into one statement per flush.

Outcomes queue up while a flush is in flight, so batches grow with load and latency stays low
when idle. A failed flush (database down) is retried with backoff, keeping the batch; the
writes are fenced, so a retry after the lease was lost changes nothing. Each submitter gets a
future telling whether its write took effect.

No single outcome can block the others: when the database refuses a value of the batch
(:class:`StoreDataError`: a result jsonb will not take, a delay out of range) the batch is
written row by row; a row still refused is written as a plain failure naming the refusal, and
counted as a bad row.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from workfleet.errors import StoreDataError, StoreError
from workfleet.models import Completion
from workfleet.observability.logging import Logger
from workfleet.runtime.outcomes import printable
from workfleet.store import Observer, RunQueue


@dataclass(slots=True)
class _Pending:
    completion: Completion
    applied: asyncio.Future[bool]


class Completer:
    """Owns the outcome writes of one worker."""

    def __init__(
        self,
        queue: RunQueue,
        worker_id: str,
        observer: Observer,
        log: Logger,
        max_batch: int = 1000,
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.observer = observer
        self.log = log
        self.max_batch = max_batch
        self._queue: list[_Pending] = []
        self._ready = asyncio.Event()
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, completion: Completion) -> asyncio.Future[bool]:
        """Queue a write; the future resolves to True when it changed the row."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(completion, future))
        self._idle.clear()
        self._ready.set()
        return future

    async def run(self) -> None:
        """Flush until :meth:`stop` is called and the queue is empty."""
        delay = 0.05
        while True:
            if not self._queue:
                self._idle.set()
                if self._stopping:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                # shielded: a cancelled worker must not lose a write that is on the wire
                applied = await asyncio.shield(self._write([p.completion for p in batch]))
            except StoreError as exc:
                self._queue[:0] = batch
                self.log.warning(
                    "outcome write failed, retrying",
                    error=str(exc),
                    batch=len(batch),
                    retry_in=round(delay, 2),
                )
                await asyncio.sleep(delay * (1 + random.random() / 10))  # noqa: S311
                delay = min(delay * 2, 5.0)
                if self._stopping and delay >= 5.0:
                    self._give_up()
                    return
                continue
            delay = 0.05
            for p in batch:
                if not p.applied.done():
                    p.applied.set_result(p.completion.lease.run_id in applied)

    async def _write(self, completions: Sequence[Completion]) -> set[uuid.UUID]:
        try:
            return set(await self.queue.complete_many(self.worker_id, completions))
        except StoreDataError as exc:
            if len(completions) == 1:
                return await self._write_refused(completions[0], exc)
        # one refused value fails the whole statement: find it by writing one row at a time
        applied: set[uuid.UUID] = set()
        for completion in completions:
            applied |= await self._write([completion])
        return applied

    async def _write_refused(self, completion: Completion, exc: StoreDataError) -> set[uuid.UUID]:
        """The database refused this outcome: fail the run plainly, saying why."""
        self.observer.bad_row("complete_many")
        reason = printable(str(exc).splitlines()[0])[:300]
        self.log.error(
            "outcome refused by the database; failing the run",
            run_id=str(completion.lease.run_id),
            error=reason,
        )
        plain = Completion.failed(
            completion.lease,
            f"outcome could not be stored: {reason}",
            {"error": reason, "refused_event": str(completion.event)},
        )
        try:
            return set(await self.queue.complete_many(self.worker_id, [plain]))
        except StoreDataError as again:
            # nothing of the run's own is left in this write: give up on it, its lease expires
            self.log.error("plain failure refused too", error=str(again))
            return set()

    def _give_up(self) -> None:
        for p in self._queue:
            if not p.applied.done():
                p.applied.set_result(False)
        self.log.error(
            "outcome writes abandoned at shutdown; leases will expire and be retried",
            count=len(self._queue),
        )
        self._queue.clear()
        self._idle.set()

    def stop(self) -> None:
        """Finish what is queued, then return from :meth:`run`."""
        self._stopping = True
        self._ready.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()
