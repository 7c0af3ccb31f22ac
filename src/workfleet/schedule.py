"""Cron schedules, pure: validation, the next fire time in a timezone, the idempotency key.

An expression is 5 fields (minute hour day-of-month month day-of-week) or one of the standard
descriptors ``@yearly @annually @monthly @weekly @daily @midnight @hourly`` (any case, as
simple-workflow's Python client accepts them), which stand for their 5-field equivalents.
Nothing else is accepted: no seconds or year field, no ``@every``, no ``TZ=`` prefix.

Fire times are computed in the schedule's own IANA timezone (``0 9 * * *`` in Europe/Paris is
09:00 Paris time in winter and in summer) and returned as aware UTC datetimes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

CRON_FIELDS = 5
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def validate_cron(expr: str) -> str:
    """Return the 5-field form of ``expr`` (whitespace normalised, a descriptor translated) if
    it is a valid expression, else ``ValueError``."""
    text = " ".join(expr.split())
    text = DESCRIPTORS.get(text.lower(), text)
    if text.startswith("@"):
        raise ValueError(
            f"cron expression {expr!r} is not supported: the descriptors are "
            f"{', '.join(DESCRIPTORS)}; write anything else as 5 fields"
        )
    if len(text.split(" ")) != CRON_FIELDS:
        raise ValueError(
            f"cron expression {expr!r} must have 5 fields (minute hour day month weekday)"
        )
    if not croniter.is_valid(text):
        raise ValueError(f"cron expression {expr!r} is not valid")
    return text


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is a known IANA timezone, else ``ValueError``."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r} (use an IANA name such as Europe/Paris)"
        ) from None
    return name


def schedule_problem(expr: str, tz: str) -> str | None:
    """Why a schedule with this expression and timezone cannot fire here, or None. The ticker
    disables such a schedule when it comes due."""
    try:
        validate_cron(expr)
        validate_timezone(tz)
    except ValueError as exc:
        return str(exc)
    return None


def next_fire(expr: str, tz: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware), as an aware UTC datetime."""
    zone = ZoneInfo(validate_timezone(tz))
    local = after.astimezone(zone)
    nxt: datetime = croniter(validate_cron(expr), local).get_next(datetime)
    return nxt.astimezone(UTC)


def schedule_key(schedule_id: uuid.UUID | str, fire_at: datetime) -> str:
    """The run idempotency key of one firing: ``schedule:<id>:<unix seconds>``."""
    return f"schedule:{schedule_id}:{int(fire_at.timestamp())}"
