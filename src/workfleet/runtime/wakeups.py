"""How a lease loop waits for its next claim: :class:`Wakeup`, the signal it sleeps on, and
:class:`ClaimPacer`, which spaces its claims when wake-ups keep coming.

Both sit on the pickup path (NOTIFY → claim → executor), where every event-loop step counts:
a wake-up resolves one future, so the loop resumes one step after it, where an
``asyncio.Event`` awaited under ``asyncio.wait_for`` (a task per wait on Python 3.11) took three.
"""

from __future__ import annotations

import asyncio

# Claims a loop may make back to back before the pacer spaces them (see ClaimPacer).
CLAIM_BURST = 10


class Wakeup:
    """A set-once signal with a timed wait: :meth:`set` wakes the waiter (or the next
    :meth:`wait`) until :meth:`clear`; :meth:`nudge` wakes the waiter without setting it. Used
    from one event loop by one waiter at a time."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[bool] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            self.nudge()

    def nudge(self) -> None:
        """Wake the waiter, if there is one, without setting the signal."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float) -> bool:
        """Until set or nudged (True, at once if it is set) or ``timeout`` seconds pass
        (False)."""
        if self._set:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(max(timeout, 0.0), _expire, waiter)
        self._waiter = waiter
        try:
            woken = await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return woken or self._set


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class ClaimPacer:
    """Spaces a loop's claims: at most ``burst`` back to back, then on average one per
    ``interval`` seconds for as long as wake-ups keep coming (``interval`` 0: never waits).

    A claim that comes after a quiet spell is never held back, nor are the next few (two
    inserts a millisecond apart are picked up a round trip apart, not ``interval`` apart); a
    stream of wake-ups, one INSERT each, costs at most one claim per ``interval`` once the burst
    is spent, each taking every run that arrived meanwhile. It is the generic cell rate
    algorithm: ``_tat`` is when the claim after the allowance would conform.
    """

    __slots__ = ("_tat", "interval", "tolerance")

    def __init__(self, interval: float, burst: int = CLAIM_BURST) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.interval = interval
        self.tolerance = interval * (burst - 1)
        self._tat = float("-inf")

    def delay(self, now: float) -> float:
        """Seconds a claim at ``now`` (``time.monotonic()``) must wait; 0 to claim at once."""
        return max(0.0, self._tat - self.tolerance - now)

    def claimed(self, now: float) -> None:
        """A claim was made at ``now``."""
        self._tat = max(self._tat, now) + self.interval
