"""The fake's LIKE against PostgreSQL's, case by case: type patterns reach SQL as LIKE data."""

from __future__ import annotations

from typing import Any

import pytest

from workfleet.testing import like

CASES = [
    ("billing.invoice.v1", "billing.%"),
    ("billing", "billing.%"),
    ("billing.", "billing.%"),
    ("aXb.v1", "a\\_b.%"),
    ("a_b.v1", "a\\_b.%"),
    ("aXb.v1", "a_b.%"),
    ("a%b.v1", "a\\%b.v1"),
    ("a-b.v1", "a\\%b.v1"),
    ("a\\b.v1", "a\\\\b.%"),
    ("ab.v1", "a\\\\b.%"),
    ("ab", "a\\b"),
    ("Billing.x", "billing.%"),
    ("a\nb", "a_b"),
    ("a\nb", "a%"),
    ("", "%"),
    ("", "_"),
    ("x'; DROP TABLE t; --", "x'';%"),
    ("x'; DROP TABLE t; --", "x';%"),
    ("émoji 🚀", "émoji _"),
    ("abc", "a%c%"),
    ("abc", "%b"),
]


@pytest.mark.parametrize(("value", "pattern"), CASES)
def test_fake_like_matches_postgres(
    value: str, pattern: str, postgres_like: dict[tuple[str, str], bool]
) -> None:
    assert like(value, pattern) is postgres_like[(value, pattern)]


def test_pattern_ending_in_an_escape_is_rejected_by_both() -> None:
    with pytest.raises(ValueError, match="escape"):
        like("ab\\", "ab\\")


@pytest.fixture
async def postgres_like(run_sql: Any) -> dict[tuple[str, str], bool]:
    rows = await run_sql(
        "SELECT v, p, v LIKE p FROM unnest(%s::text[], %s::text[]) AS t(v, p)",
        [[v for v, _ in CASES], [p for _, p in CASES]],
    )
    return {(v, p): matched for v, p, matched in rows}
