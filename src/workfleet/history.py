"""A run's history as people read it: its executions (attempts) from its audit trail, counted
from one, with the maximum that really applied. Pure: no I/O, used by ``workfleet inspect``
and by anything else that shows a run.

The row's ``attempt`` column counts *failed* attempts (simple-workflow's meaning), so a run that
succeeded first time says 0; and an executor's own ``max_attempts`` beats the row's column. What
an operator wants is "this was execution 1 of at most 5, it ran on worker w1 from 10:02 to
10:03 and failed with ...". The events say it: a ``leased`` event opens an execution; the
``succeeded``, ``failed``, ``retried`` or ``cancelled`` event that follows closes it. When the
lifecycle events are not written (``WORKFLEET_RUN_EVENTS=failures``) a failure event still
carries its worker and start time, so failed attempts are listed all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from workfleet.models import Event, EventType, RunRecord, RunStatus


@dataclass(frozen=True, slots=True)
class Attempt:
    """One execution of a run: when, where, and how it ended (``outcome`` None: still running
    or never heard of again)."""

    number: int
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    error: str | None
    error_type: str | None
    worker_id: str | None


@dataclass(frozen=True, slots=True)
class AttemptCount:
    """Attempts used (failed ones plus the running or successful one) of the maximum that
    applies: the executor's when an event recorded it, else the row's."""

    used: int
    maximum: int


_CLOSING = {EventType.SUCCEEDED, EventType.FAILED, EventType.RETRIED, EventType.CANCELLED}


def _data(event: Event) -> dict[str, Any]:
    return event.data if isinstance(event.data, dict) else {}


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _outcome(event: Event) -> str:
    data = _data(event)
    if event.event_type is EventType.RETRIED:
        reason = data.get("reason")
        if reason == "lease_expired":
            return "lease expired"
        if isinstance(reason, str) and reason in ("snoozed", "released"):
            return reason
        return "retried"
    return str(event.event_type)


def attempts(events: Sequence[Event], status: RunStatus | None = None) -> list[Attempt]:
    """The run's executions, oldest first, from its events (oldest first). ``status`` is the
    run's current status: an open execution of a leased run is the one running now."""
    out: list[Attempt] = []
    current: Attempt | None = None
    for event in events:
        data = _data(event)
        kind = event.event_type
        if kind is EventType.LEASED or (kind is EventType.STARTED and current is None):
            if current is not None:  # opened and never closed: the lease expired unrecorded
                out.append(current)
            worker = data.get("worker_id")
            current = Attempt(
                len(out) + 1,
                event.created_at,
                None,
                None,
                None,
                None,
                worker if isinstance(worker, str) else None,
            )
        elif kind in _CLOSING:
            redrive = kind is EventType.RETRIED and data.get("reason") == "redrive"
            if redrive or (current is None and kind is EventType.CANCELLED):
                continue  # not the end of an execution: an operator acted on a waiting run
            worker = data.get("worker_id")
            error = data.get("error")
            error_type = data.get("error_type")
            base = current or Attempt(
                len(out) + 1, _time(data.get("started_at")), None, None, None, None, None
            )
            current = None
            out.append(
                replace(
                    base,
                    ended_at=event.created_at,
                    outcome=_outcome(event),
                    error=error if isinstance(error, str) else None,
                    error_type=error_type if isinstance(error_type, str) else None,
                    worker_id=base.worker_id or (worker if isinstance(worker, str) else None),
                )
            )
    if current is not None:
        out.append(replace(current, outcome="running" if status is RunStatus.LEASED else None))
    return out


def attempt_count(record: RunRecord, events: Sequence[Event]) -> AttemptCount:
    """Attempts used of the maximum, as people count them: a run that succeeded first time used
    1; one running its second try uses 2 (the row's ``attempt`` says 0 and 1)."""
    maximum = record.max_attempts
    for event in reversed(events):
        recorded = _data(event).get("max_attempts")
        if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
            maximum = recorded
            break
    running = record.status in (RunStatus.LEASED, RunStatus.SUCCEEDED)
    return AttemptCount(record.attempt + (1 if running else 0), maximum)


def shown_data(event: Event) -> Any:
    """An event's data as ``inspect`` lists it: without the traceback (the attempts table and
    ``--json`` carry it), and a ``cancelled`` event's ``attempt`` counted as the others are
    (the trigger that writes it records the row's count of failed attempts)."""
    if not isinstance(event.data, dict):
        return event.data
    data = {k: v for k, v in event.data.items() if k != "traceback"}
    attempt = data.get("attempt")
    if event.event_type is EventType.CANCELLED and isinstance(attempt, int):
        data["attempt"] = attempt + (1 if data.get("previous_status") == "leased" else 0)
    return data
