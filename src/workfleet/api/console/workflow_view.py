"""What the console shows of a durable workflow on its run page: the step waterfall (each
checkpoint as a bar on one time axis), what it waits for, its mailbox and its children."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workfleet.checkpoints import StepRecord
from workfleet.operations import WorkflowDetail


@dataclass(frozen=True, slots=True)
class Bar:
    """One checkpoint on the waterfall: ``left``/``width`` in percent of the time axis."""

    step: StepRecord
    left: float
    width: float
    seconds: float | None


def waterfall(steps: list[StepRecord], now: datetime) -> list[Bar]:
    """Checkpoints on one axis from the first start to the last end (an unfinished one runs
    to ``now``); every bar at least 0.5 % wide so an instant step stays visible."""
    timed = [s for s in steps if s.started_at is not None]
    if not timed:
        return [Bar(s, 0.0, 0.5, None) for s in steps]
    start = min(s.started_at for s in timed if s.started_at is not None)
    ends = [s.finished_at or now for s in timed]
    span = max((max(ends) - start).total_seconds(), 1e-6)
    bars = []
    for s in steps:
        if s.started_at is None:
            bars.append(Bar(s, 0.0, 0.5, None))
            continue
        end = s.finished_at or now
        left = (s.started_at - start).total_seconds() / span * 100
        width = max((end - s.started_at).total_seconds() / span * 100, 0.5)
        seconds = None if s.finished_at is None else (s.finished_at - s.started_at).total_seconds()
        bars.append(Bar(s, round(min(left, 99.5), 2), round(min(width, 100 - left), 2), seconds))
    return bars


def context(detail: WorkflowDetail | None, now: datetime) -> dict[str, Any]:
    """The run page's workflow variables (empty for an ordinary run)."""
    if detail is None:
        return {"workflow": None}
    return {
        "workflow": detail,
        "bars": waterfall(detail.steps, now),
        "waiting_signals": sum(1 for g in detail.signals if g["consumed_at"] is None),
    }
