"""One execution of a workflow run: its store, lease, history, clock, and what it waits for.

A wait (a durable sleep, a signal, children, a step's retry backoff) that cannot be met at once
is *registered* here and its coroutine blocks. When every branch of the workflow is blocked on a
wait (no step is running), the driver suspends the run: the waits become one
:class:`~workfleet.checkpoints.Suspension`. A wait with a deadline that falls due while other
branches still work is met in the execution, without suspending.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from workfleet.checkpoints import (
    Checkpoint,
    StepKind,
    StepRecord,
    StepStatus,
    Suspension,
    WorkflowStore,
)
from workfleet.models import Lease, RunStatus
from workfleet.store import Observer
from workfleet.workflow.history import History

# A finite "never": PostgreSQL <= 16 cannot subtract 'infinity' and Go's lib/pq cannot scan it.
FAR_FUTURE = datetime(9998, 12, 31, tzinfo=UTC)

_OUTCOMES = {
    StepStatus.SUCCEEDED: "succeeded",
    StepStatus.FAILED: "failed",
    StepStatus.RETRYING: "retried",
}
_UNCOUNTED = frozenset({StepKind.VALUE, StepKind.PATCHES})

# Which wait names the row's wait_kind when several are pending (the most specific first).
_KIND_ORDER = ("signal", "children", "retry", "sleep")


@dataclass(eq=False, slots=True)
class Wait:
    """A registered wait: until ``wake_at`` (None: no deadline), for ``signal``, or for every
    run in ``children`` to be final. ``checkpoint`` is written with the suspension."""

    kind: str
    key: str
    wake_at: datetime | None = None
    signal: str | None = None
    children: tuple[uuid.UUID, ...] = ()
    checkpoint: Checkpoint | None = None
    future: asyncio.Future[None] | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class WorkflowSession:
    """State shared by one execution's :class:`~workfleet.workflow.Workflow` and its driver."""

    def __init__(
        self,
        store: WorkflowStore,
        worker_id: str,
        lease: Lease,
        db_now: datetime,
        *,
        max_output_bytes: int,
        lost: Callable[[RunStatus | None], None],
        patches: tuple[str, ...] = (),
        run_type: str = "",
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.lease = lease
        self.history = History(())
        self.max_output_bytes = max_output_bytes
        self.lost = lost
        self.declared_patches = patches
        self.run_type = run_type
        self.observer = observer
        self.in_flight = 0
        self.waits: list[Wait] = []
        # a failure no code may swallow: non-determinism or a lost lease (the driver re-raises)
        self.fatal: BaseException | None = None
        self.closed = False  # the driver gave up on this execution: no new step may start
        self._db_t0 = db_now
        self._t0 = time.monotonic()
        self._on_change: asyncio.Future[None] | None = None

    @property
    def run_id(self) -> uuid.UUID:
        return self.lease.run_id

    def db_now(self) -> datetime:
        """The database clock, as of the claim plus the time elapsed here since."""
        return self._db_t0 + timedelta(seconds=time.monotonic() - self._t0)

    # --- the driver's view ----------------------------------------------------------------

    def reset(self, history: History) -> None:
        """Start a replay over ``history``."""
        self.history = history
        self.waits.clear()
        self.in_flight = 0
        self.fatal = None
        self.closed = False

    def watch(self) -> asyncio.Future[None]:
        """A future resolved at the next change (a wait registered or met, a step ended)."""
        self._on_change = asyncio.get_running_loop().create_future()
        return self._on_change

    def changed(self) -> None:
        if self._on_change is not None and not self._on_change.done():
            self._on_change.set_result(None)

    @property
    def blocked(self) -> bool:
        """Every branch waits: something is registered and no call of the workflow is active
        (``in_flight`` counts the calls that run, not those blocked on a wait)."""
        return self.in_flight == 0 and bool(self.waits)

    def suspension(self) -> Suspension:
        """The registered waits as one suspension: woken by any signal, by all children being
        final, or at the earliest deadline."""
        deadlines = [w.wake_at for w in self.waits if w.wake_at is not None]
        kinds = {w.kind for w in self.waits}
        kind = next(k for k in _KIND_ORDER if k in kinds)
        signals = tuple(sorted({w.signal for w in self.waits if w.signal is not None}))
        children = tuple(dict.fromkeys(c for w in self.waits for c in w.children))
        checkpoints = tuple(w.checkpoint for w in self.waits if w.checkpoint is not None)
        wake_at = min(deadlines) if deadlines else FAR_FUTURE
        event: dict[str, Any] = {
            "kind": kind,
            "waits": sorted(w.key for w in self.waits),
            "until": wake_at.isoformat() if deadlines else None,
        }
        if signals:
            event["signals"] = list(signals)
        if children:
            event["children"] = len(children)
        return Suspension(wake_at, kind, signals, children, checkpoints, event)

    def close(self) -> None:
        """No new step may start; blocked waits are abandoned (the driver cancels them)."""
        self.closed = True
        for wait in list(self.waits):
            if wait.timer is not None:
                wait.timer.cancel()
            if wait.future is not None and not wait.future.done():
                wait.future.cancel()

    # --- the workflow's view --------------------------------------------------------------

    async def block(self, wait: Wait) -> None:
        """Register ``wait`` and block until its deadline passes in this execution (returns)
        or the driver suspends the run (cancelled)."""
        if self.closed:
            # the driver is done with this execution: nothing would ever meet the wait
            raise asyncio.CancelledError("the workflow's execution is stopping")
        loop = asyncio.get_running_loop()
        wait.future = loop.create_future()
        if wait.wake_at is not None:
            delay = (wait.wake_at - self.db_now()).total_seconds()
            wait.timer = loop.call_later(max(delay, 0.0), _resolve, wait.future)
        self.waits.append(wait)
        self.in_flight -= 1  # blocked: not activity
        self.changed()
        try:
            await wait.future
        finally:
            self.in_flight += 1
            if wait.timer is not None:
                wait.timer.cancel()
            self.waits.remove(wait)
            self.changed()

    def enter(self) -> None:
        """A call of the workflow (a step, a wait, a value) starts."""
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        self.changed()

    def keep(self, record: StepRecord) -> None:
        """Remember a checkpoint this execution wrote, and count it."""
        self.history.record(record)
        outcome = _OUTCOMES.get(record.status)
        if self.observer is not None and outcome and record.kind not in _UNCOUNTED:
            self.observer.step_finished(self.run_type, str(record.kind), outcome)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
