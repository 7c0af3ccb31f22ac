"""Type patterns: literal prefixes with one trailing %, safe as LIKE data."""

from __future__ import annotations

import pytest

from workfleet.patterns import TypePattern, best_match, claim_filter
from workfleet.testing import like

P = TypePattern.parse


@pytest.mark.parametrize(
    ("pattern", "run_type", "expected"),
    [
        ("billing.%", "billing.invoice.v1", True),
        ("billing.%", "billingX.invoice.v1", False),
        ("billing.invoice.v1", "billing.invoice.v1", True),
        ("billing.invoice.v1", "billing.invoice.v10", False),
        ("%", "anything.at.all", True),
        ("a_b.%", "a_b.v1", True),
        ("a_b.%", "aXb.v1", False),
        ("50%off.%", "50%off.v1", True),
        ("50%off.%", "50 and off.v1", False),
    ],
)
def test_matches(pattern: str, run_type: str, expected: bool) -> None:
    assert P(pattern).matches(run_type) is expected
    # the SQL form agrees with the Python form
    assert like(run_type, P(pattern).like()) is expected


def test_like_escapes_wildcards_and_backslash() -> None:
    assert P("a_b%").like() == "a\\_b%"
    assert P("x\\y.%").like() == "x\\\\y.%"
    assert P("100%.v1").like() == "100\\%.v1"


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "x" * 201])
def test_rejects_unusable_patterns(bad: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        P(bad)


def test_injection_looking_input_is_just_data() -> None:
    hostile = P("x'; DROP TABLE workflow_run; --%")
    assert hostile.wildcard
    assert hostile.matches("x'; DROP TABLE workflow_run; --anything")
    assert "'" in hostile.like(), "quotes stay data; they are bound, never spliced"


def test_intersect() -> None:
    assert P("billing.%").intersect(P("billing.invoice.v1")) == P("billing.invoice.v1")
    assert P("billing.%").intersect(P("billing.inv.%")) == P("billing.inv.%")
    assert P("billing.inv.%").intersect(P("%")) == P("billing.inv.%")
    assert P("billing.%").intersect(P("media.%")) is None
    assert P("a.v1").intersect(P("b.v1")) is None


def test_claim_filter_is_loop_and_executors() -> None:
    executors = [P("billing.invoice.v1"), P("billing.payment.v1"), P("notify.%"), P("media.v1")]
    assert claim_filter(P("billing.%"), executors) == (
        ["billing.invoice.v1", "billing.payment.v1"],
        [],
    )
    assert claim_filter(P("notify.email.%"), executors) == ([], ["notify.email.%"])
    exact, likes = claim_filter(P("%"), executors)
    assert exact == ["billing.invoice.v1", "billing.payment.v1", "media.v1"]
    assert likes == ["notify.%"]
    assert claim_filter(P("nothing.%"), executors) == ([], [])


def test_claim_filter_drops_covered_patterns() -> None:
    exact, likes = claim_filter(P("%"), [P("n.%"), P("n.e.%"), P("n.e.v1")])
    assert (exact, likes) == ([], ["n.%"])


def test_best_match_prefers_exact_then_longest() -> None:
    patterns = [P("n.%"), P("n.email.%"), P("n.email.v1")]
    assert best_match("n.email.v1", patterns) == P("n.email.v1")
    assert best_match("n.email.v2", patterns) == P("n.email.%")
    assert best_match("n.sms.v1", patterns) == P("n.%")
    assert best_match("x.v1", patterns) is None
