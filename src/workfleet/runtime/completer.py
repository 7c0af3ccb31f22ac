"""The completer: batches outcome writes into one statement per flush.

Outcomes queue up while a flush is in flight, so batches grow with load and latency stays low
when idle. A failed flush (database down) is retried with backoff, keeping the batch; the
writes are fenced, so a retry after the lease was lost changes nothing. Each submitter learns
whether its write took effect: :meth:`Completer.add` calls it back (in the completer's task,
right after the batch's statement: no future and no event-loop callback per run), and
:meth:`Completer.submit` returns a future.

No single outcome can block the others: when the database refuses a value of the batch
(:class:`StoreDataError`: a result jsonb will not take, a delay out of range) the batch is
written row by row; a row still refused is written as a plain failure naming the refusal, and
counted as a bad row.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workfleet.errors import StoreDataError, StoreError
from workfleet.models import Completion
from workfleet.observability.logging import Logger
from workfleet.runtime.outcomes import printable
from workfleet.store import Observer, RunQueue

Written = Callable[[bool], None]


@dataclass(slots=True)
class _Pending:
    completion: Completion
    written: Written


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

    def add(self, completion: Completion, written: Written) -> None:
        """Queue a write; ``written(True)`` once it changed the row, ``written(False)`` once it
        could not (fenced off, or abandoned at shutdown). Called once, from the completer's
        task; an exception it raises is logged and affects no other write."""
        self._queue.append(_Pending(completion, written))
        self._idle.clear()
        self._ready.set()

    def submit(self, completion: Completion) -> asyncio.Future[bool]:
        """Queue a write; the future resolves to True when it changed the row."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def written(applied: bool) -> None:
            if not future.done():
                future.set_result(applied)

        self.add(completion, written)
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
            self._report(batch, applied)

    def _report(self, batch: Sequence[_Pending], applied: set[uuid.UUID] | None) -> None:
        """Tell each submitter of ``batch`` whether its write took effect (None: none did)."""
        for p in batch:
            try:
                p.written(applied is not None and p.completion.lease.run_id in applied)
            except Exception:  # a submitter's bug must not stop the other writes
                self.log.exception("outcome callback failed", run_id=str(p.completion.lease.run_id))

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
        self._report(self._queue, None)
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
