"""Clocks for the in-memory store: the real UTC time, or a manual one tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Where :class:`MemoryStore` reads the time that PostgreSQL would call ``now()``."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The real time, in UTC (the default clock of :class:`MemoryStore`)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to, and never backwards.

    Starts at ``start`` (default 2030-01-01 00:00 UTC) so tests never depend on the real date.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("ManualClock(start=...) must be timezone-aware")
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move forward by ``seconds``; return the new time."""
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError("ManualClock.advance() cannot move the clock backwards")
        self._now += step
        return self._now

    def advance_to(self, moment: datetime) -> datetime:
        """Move forward to ``moment`` (no-op when it is not in the future); return the new time."""
        if moment.tzinfo is None:
            raise ValueError("ManualClock.advance_to() needs a timezone-aware datetime")
        self._now = max(self._now, moment)
        return self._now
