"""Stop signals that arrive while a worker starts, before its event loop handles them.

Importing the runtime and the plugins takes a moment; a SIGTERM in that window would kill the
process by signal (exit 143, or -15 to a parent) although nothing was claimed yet. The CLI
holds SIGTERM from its first line of work (Ctrl-C, SIGINT, still interrupts at once); the
worker, once its own handlers are in place, acts on what was held (a graceful stop: exit 0).
"""

from __future__ import annotations

import signal
from types import FrameType

_held: list[str] = []


def hold_stop_signals() -> None:
    """Remember SIGTERM instead of dying, until the worker reads :func:`held_stop_signals`."""
    signal.signal(signal.SIGTERM, _hold)


def _hold(signum: int, frame: FrameType | None) -> None:
    _held.append(signal.Signals(signum).name)


def held_stop_signals() -> list[str]:
    """The stop signals held so far, oldest first (and forget them)."""
    taken = list(_held)
    _held.clear()
    return taken
