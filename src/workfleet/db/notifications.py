"""The wake-up protocol's Python half: the channel name and the payload decoder.

The encoder is SQL, defined once by migration 0005 (``workfleet_notify_type`` and
``workfleet_notify_cancelled``) and used by the triggers and by every statement that makes runs
runnable. Payloads:

=============  =================================================================
``i:<type>``   runs of ``<type>`` became runnable
``a:``         runs became runnable whose type did not fit a payload: look at all
``c:<run id>`` that run was cancelled
=============  =================================================================

Anything else is ignored: a NOTIFY is a hint, and polling is the truth.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


def channel_name(schema: str) -> str:
    """The channel the functions of ``schema`` notify on."""
    return f"workfleet:{schema}"


@dataclass(frozen=True, slots=True)
class Runnable:
    """Runs became runnable: of ``run_type``, or of any type when it is None."""

    run_type: str | None


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The run ``run_id`` was cancelled."""

    run_id: uuid.UUID


Notification = Runnable | Cancelled


def decode(payload: str) -> Notification | None:
    """The notification a payload carries, or None for one this release does not know."""
    kind, sep, rest = payload.partition(":")
    if not sep:
        return None
    if kind == "i" and rest:
        return Runnable(rest)
    if kind == "a":
        return Runnable(None)
    if kind == "c":
        try:
            return Cancelled(uuid.UUID(rest))
        except ValueError:
            return None
    return None
