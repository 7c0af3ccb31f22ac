"""Cron logic: 5 fields, IANA timezones across DST, the simple-workflow key format."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from workfleet.schedule import next_fire, schedule_key, validate_cron, validate_timezone


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


def test_invalid_timezone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        validate_timezone("Mars/Olympus")
    assert validate_timezone("America/New_York") == "America/New_York"


def test_schedule_key() -> None:
    sid = uuid.UUID("00000000-0000-0000-0000-000000000001")
    fire = datetime(2026, 1, 1, tzinfo=UTC)
    assert schedule_key(sid, fire) == f"schedule:{sid}:1767225600"
