"""The completer: batches outcome writes into one statement per flush.

Outcomes queue up while a flush is in flight, so batches grow with load and latency stays low
when idle. A failed flush (database down) is retried with backoff, keeping the batch; the
writes are fenced, so a retry after the lease was lost changes nothing. Each submitter gets a
future telling whether its write took effect.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from workfleet.errors import StoreError
from workfleet.models import Completion
from workfleet.store import RunStore


@dataclass(slots=True)
class _Pending:
    completion: Completion
    applied: asyncio.Future[bool]


class Completer:
    """Owns the outcome writes of one worker."""

    def __init__(self, store: RunStore, worker_id: str, log: Any, max_batch: int = 1000) -> None:
        self.store = store
        self.worker_id = worker_id
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

    @property
    def pending(self) -> int:
        return len(self._queue)

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
                applied = await asyncio.shield(
                    self.store.complete_many(self.worker_id, [p.completion for p in batch])
                )
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
