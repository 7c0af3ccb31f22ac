"""Pure backoff policies: attempt number in, delay in seconds out.

Delays are relative; the store adds them to the database's ``now()`` so worker clocks never
matter. Randomness is injectable so tests are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Jitter = Callable[[], float]  # returns a float in [0, 1)


class Backoff(Protocol):
    """How long to wait before attempt ``attempt + 1`` after ``attempt`` failures (>= 1)."""

    def delay(self, attempt: int) -> float: ...


@dataclass(frozen=True, slots=True)
class QuadraticBackoff:
    """The seed's default: ``attempt² x unit`` seconds plus 0-``jitter`` (10 %) extra.

    With ``unit=60`` this is 1 min, 4 min, 9 min ... as in simple-workflow.
    """

    unit: float = 60.0
    jitter: float = 0.10
    cap: float | None = None
    rand: Jitter = field(default=random.random, repr=False, compare=False)

    def delay(self, attempt: int) -> float:
        base = self.unit * max(attempt, 1) ** 2
        if self.cap is not None:
            base = min(base, self.cap)
        return base * (1.0 + self.jitter * self.rand())


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """``base x factor^(attempt-1)`` seconds, capped at ``cap``, plus 0-``jitter`` extra."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.10
    rand: Jitter = field(default=random.random, repr=False, compare=False)

    def delay(self, attempt: int) -> float:
        try:
            raw = self.base * self.factor ** (max(attempt, 1) - 1)
        except OverflowError:  # attempt in the thousands: far past any cap
            raw = self.cap
        return min(raw, self.cap) * (1.0 + self.jitter * self.rand())


@dataclass(frozen=True, slots=True)
class ConstantBackoff:
    """The same delay every time; handy for demos and tests."""

    seconds: float = 1.0

    def delay(self, attempt: int) -> float:
        return self.seconds


DEFAULT_BACKOFF: Backoff = QuadraticBackoff()
