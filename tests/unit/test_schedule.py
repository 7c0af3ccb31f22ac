"""Cron logic: 5 fields or a descriptor, IANA timezones across DST, the simple-workflow key
format."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from workfleet.schedule import (
    next_fire,
    schedule_key,
    schedule_problem,
    validate_cron,
    validate_timezone,
)


def test_next_fire_in_timezone_across_dst() -> None:
    # Paris switches to summer time on 2026-03-29: 09:00 local is 08:00 UTC, then 07:00 UTC
    winter = next_fire("0 9 * * *", "Europe/Paris", datetime(2026, 3, 28, 12, tzinfo=UTC))
    summer = next_fire("0 9 * * *", "Europe/Paris", datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert winter == datetime(2026, 3, 29, 7, tzinfo=UTC)
    assert summer == datetime(2026, 3, 30, 7, tzinfo=UTC)
    assert next_fire("*/15 * * * *", "UTC", datetime(2026, 1, 1, 0, 0, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 15, tzinfo=UTC
    )


@pytest.mark.parametrize("bad", ["not a cron", "* * * *", "0 0 9 * * *", "61 * * * *"])
def test_invalid_cron(bad: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        validate_cron(bad)


@pytest.mark.parametrize(
    ("descriptor", "fields"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@HOURLY", "0 * * * *"),
        ("  @daily ", "0 0 * * *"),
    ],
)
def test_descriptors_become_five_fields(descriptor: str, fields: str) -> None:
    """simple-workflow's Python client (croniter) accepts the standard descriptors in any case;
    workfleet used to disable such a schedule when it came due."""
    assert validate_cron(descriptor) == fields
    after = datetime(2026, 5, 17, 10, 30, tzinfo=UTC)
    assert next_fire(descriptor, "Europe/Paris", after) == next_fire(fields, "Europe/Paris", after)


def test_hourly_and_weekly_fire_times() -> None:
    after = datetime(2026, 5, 13, 10, 30, tzinfo=UTC)  # a Wednesday
    assert next_fire("@hourly", "UTC", after) == datetime(2026, 5, 13, 11, tzinfo=UTC)
    assert next_fire("@weekly", "UTC", after) == datetime(2026, 5, 17, tzinfo=UTC)  # Sunday


@pytest.mark.parametrize(
    "bad", ["@every 5m", "@reboot", "@fortnightly", "@hourly 5", "0 * * * * 30", "TZ=UTC 0 9 * * *"]
)
def test_everything_else_stays_strict(bad: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        validate_cron(bad)


def test_schedule_problem() -> None:
    assert schedule_problem("@daily", "Europe/Paris") is None
    assert "not supported" in (schedule_problem("@every 5m", "UTC") or "")
    assert "timezone" in (schedule_problem("0 9 * * *", "Mars/Olympus") or "")


def test_invalid_timezone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        validate_timezone("Mars/Olympus")
    assert validate_timezone("America/New_York") == "America/New_York"


def test_schedule_key() -> None:
    sid = uuid.UUID("00000000-0000-0000-0000-000000000001")
    fire = datetime(2026, 1, 1, tzinfo=UTC)
    assert schedule_key(sid, fire) == f"schedule:{sid}:1767225600"
