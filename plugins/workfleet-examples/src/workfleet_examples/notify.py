"""Notification worker: one sync pattern executor for every ``notify.*`` type.

Sync executors run in a worker thread and receive a :class:`workfleet.SyncRun`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, ValidationError

import workfleet

plugin = workfleet.Plugin("notify")


class Email(BaseModel):
    to: str = Field(min_length=3)
    subject: str
    body: str = ""


class Sms(BaseModel):
    phone: str = Field(min_length=3)
    message: str


class Push(BaseModel):
    user_id: str = Field(min_length=1)
    title: str
    body: str = ""


def _check(run: workfleet.SyncRun[Any]) -> None:
    """Stop between steps once the run is cancelled (sync executors cannot be interrupted)."""
    if run.is_cancelled():
        run.log.info(f"Notification cancelled: {run.type}")
        raise workfleet.Fail("cancelled")


def _email(run: workfleet.SyncRun[Any], p: Email) -> dict[str, str]:
    run.log.info(f"Sending email to {p.to}: {p.subject}")
    _check(run)
    run.log.info(f"Email sent successfully to {p.to}")
    return {"channel": "email", "to": p.to}


def _sms(run: workfleet.SyncRun[Any], p: Sms) -> dict[str, str]:
    run.log.info(f"Sending SMS to {p.phone}")
    _check(run)
    run.log.info(f"SMS sent successfully to {p.phone}")
    return {"channel": "sms", "to": p.phone}


def _push(run: workfleet.SyncRun[Any], p: Push) -> dict[str, str]:
    run.log.info(f"Sending push notification to user {p.user_id}: {p.title}")
    _check(run)
    run.log.info(f"Push notification sent to user {p.user_id}")
    return {"channel": "push", "to": p.user_id}


CHANNELS: dict[str, tuple[type[BaseModel], Callable[..., dict[str, str]]]] = {
    "email": (Email, _email),
    "sms": (Sms, _sms),
    "push": (Push, _push),
}


@plugin.executor("notify.%", timeout=30)
def notify(run: workfleet.SyncRun[Any]) -> dict[str, str]:
    """Send an email, SMS or push notification (notify.<channel>.vN)."""
    run.log.info(f"Processing notification: {run.type}")
    parts = run.type.split(".")
    channel = parts[1] if len(parts) >= 3 else ""
    if channel not in CHANNELS:
        raise workfleet.Fail(f"unsupported notification type {run.type!r}")
    model, send = CHANNELS[channel]
    try:
        payload = model.model_validate(run.payload)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) or "payload" for e in exc.errors())
        raise workfleet.Fail(f"invalid {channel} payload: check {fields}") from None
    _check(run)
    return send(run, payload)
