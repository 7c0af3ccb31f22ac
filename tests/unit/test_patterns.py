"""Type patterns: literal prefixes with one trailing %, safe as LIKE data."""

from __future__ import annotations

import itertools

import pytest

from workfleet.patterns import MAX_PATTERN_LENGTH, TypePattern, best_match, claim_filter
from workfleet.testing import like

P = TypePattern.parse

HOSTILE = "x'; DROP TABLE workflow_run; --%"

# patterns and run types that exercise every literal-character case against each other
PATTERNS = [
    "%",
    "billing.%",
    "billing.inv.%",
    "billing.invoice.v1",
    "billing.invoice.%",
    "a_b.%",
    "a_b.v1",
    "50%off.%",
    "x\\y.%",
    "media.v1",
    HOSTILE,
]
TYPES = [
    "billing.invoice.v1",
    "billing.invoice.v10",
    "billing.inv.v1",
    "billing.payment.v1",
    "billingX.v1",
    "a_b.v1",
    "aXb.v1",
    "a_b.v2",
    "50%off.v1",
    "50 and off.v1",
    "x\\y.v1",
    "xxy.v1",
    "media.v1",
    "x'; DROP TABLE workflow_run; --anything",
    "",
]


@pytest.mark.parametrize(
    ("text", "prefix", "wildcard"),
    [
        ("billing.invoice.v1", "billing.invoice.v1", False),
        ("billing.%", "billing.", True),
        ("%", "", True),
        ("a%%", "a%", True),  # only the last % is the wildcard
        ("50%off.v1", "50%off.v1", False),
        ("a_b", "a_b", False),
        (HOSTILE, HOSTILE[:-1], True),
    ],
)
def test_parse(text: str, prefix: str, wildcard: bool) -> None:
    pattern = P(text)
    assert (pattern.prefix, pattern.wildcard) == (prefix, wildcard)
    assert str(pattern) == text


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "tab\there", "x" * (MAX_PATTERN_LENGTH + 1)])
def test_rejects_unusable_patterns(bad: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        P(bad)


def test_longest_allowed_pattern() -> None:
    assert P("x" * MAX_PATTERN_LENGTH).prefix == "x" * MAX_PATTERN_LENGTH


@pytest.mark.parametrize(
    ("pattern", "run_type", "expected"),
    [
        ("billing.%", "billing.invoice.v1", True),
        ("billing.%", "billingX.invoice.v1", False),
        ("billing.%", "billing.", True),
        ("billing.invoice.v1", "billing.invoice.v1", True),
        ("billing.invoice.v1", "billing.invoice.v10", False),
        ("billing.invoice.v1", "Billing.invoice.v1", False),
        ("%", "anything.at.all", True),
        ("a_b.%", "a_b.v1", True),
        ("a_b.%", "aXb.v1", False),
        ("50%off.%", "50%off.v1", True),
        ("50%off.%", "50 and off.v1", False),
        ("x\\y.%", "x\\y.v1", True),
        ("x\\y.%", "xy.v1", False),
    ],
)
def test_matches(pattern: str, run_type: str, expected: bool) -> None:
    assert P(pattern).matches(run_type) is expected
    # the SQL form agrees with the Python form
    assert like(run_type, P(pattern).like()) is expected


def test_like_agrees_with_matches_everywhere() -> None:
    for pattern, run_type in itertools.product(PATTERNS, TYPES):
        operand = P(pattern).like()
        assert like(run_type, operand) is P(pattern).matches(run_type), (pattern, run_type)


@pytest.mark.parametrize(
    ("pattern", "operand"),
    [
        ("a_b%", "a\\_b%"),
        ("x\\y.%", "x\\\\y.%"),
        ("100%.v1", "100\\%.v1"),
        ("50%off.%", "50\\%off.%"),
        ("%", "%"),
        ("plain.v1", "plain.v1"),
        (HOSTILE, "x'; DROP TABLE workflow\\_run; --%"),
    ],
)
def test_like_escapes_wildcards_and_backslash(pattern: str, operand: str) -> None:
    assert P(pattern).like() == operand


def test_injection_looking_input_is_just_data() -> None:
    hostile = P(HOSTILE)
    assert hostile.wildcard
    assert hostile.matches("x'; DROP TABLE workflow_run; --anything")
    assert not hostile.matches("x")
    assert not hostile.matches("x'; DROP TABLE workflowXrun; --anything"), "_ is literal"
    assert "'" in hostile.like(), "quotes stay data; they are bound, never spliced"
    exact, likes = claim_filter(P("%"), [hostile])
    assert (exact, likes) == ([], ["x'; DROP TABLE workflow\\_run; --%"])


def test_intersect() -> None:
    assert P("billing.%").intersect(P("billing.invoice.v1")) == P("billing.invoice.v1")
    assert P("billing.%").intersect(P("billing.inv.%")) == P("billing.inv.%")
    assert P("billing.inv.%").intersect(P("%")) == P("billing.inv.%")
    assert P("billing.%").intersect(P("media.%")) is None
    assert P("a.v1").intersect(P("b.v1")) is None
    assert P("a.v1").intersect(P("a.v1")) == P("a.v1")
    assert P("billing.%").intersect(P("billing.")) == P("billing."), "the bare prefix is a type"


def test_intersect_matches_exactly_what_both_match() -> None:
    for a, b in itertools.product(PATTERNS, PATTERNS):
        both = P(a).intersect(P(b))
        assert both == P(b).intersect(P(a)), (a, b)
        for run_type in TYPES:
            expected = P(a).matches(run_type) and P(b).matches(run_type)
            assert (both is not None and both.matches(run_type)) is expected, (a, b, run_type)


EXECUTORS = [P("billing.invoice.v1"), P("billing.payment.v1"), P("notify.%"), P("media.v1")]


def test_claim_filter_narrows_a_loop_prefix_to_the_executors() -> None:
    assert claim_filter(P("billing.%"), EXECUTORS) == (
        ["billing.invoice.v1", "billing.payment.v1"],
        [],
    )
    exact, likes = claim_filter(P("%"), EXECUTORS)
    assert exact == ["billing.invoice.v1", "billing.payment.v1", "media.v1"]
    assert likes == ["notify.%"]


def test_claim_filter_narrows_an_executor_prefix_to_the_loop() -> None:
    assert claim_filter(P("notify.email.%"), EXECUTORS) == ([], ["notify.email.%"])
    assert claim_filter(P("notify.email.v1"), EXECUTORS) == (["notify.email.v1"], [])


def test_claim_filter_with_nothing_in_common_claims_nothing() -> None:
    assert claim_filter(P("nothing.%"), EXECUTORS) == ([], [])
    assert claim_filter(P("billing.refund.v1"), EXECUTORS) == ([], [])
    assert claim_filter(P("%"), []) == ([], [])


def test_claim_filter_drops_covered_patterns() -> None:
    exact, likes = claim_filter(P("%"), [P("n.%"), P("n.e.%"), P("n.e.v1")])
    assert (exact, likes) == ([], ["n.%"])


def test_claim_filter_escapes_what_it_hands_to_sql() -> None:
    assert claim_filter(P("a_b.%"), [P("%")]) == ([], ["a\\_b.%"])
    assert claim_filter(P("%"), [P("a_b.v1")]) == (["a_b.v1"], []), "exact types are = data"


@pytest.mark.parametrize("loop", PATTERNS)
def test_claim_filter_selects_exactly_the_executable_types_of_the_loop(loop: str) -> None:
    executors = [P(p) for p in PATTERNS if p != loop]
    exact, likes = claim_filter(P(loop), executors)
    for run_type in TYPES:
        claimable = run_type in exact or any(like(run_type, operand) for operand in likes)
        wanted = P(loop).matches(run_type) and any(e.matches(run_type) for e in executors)
        assert claimable is wanted, run_type


def test_best_match_prefers_exact_then_longest() -> None:
    patterns = [P("n.%"), P("n.email.%"), P("n.email.v1"), P("%")]
    assert best_match("n.email.v1", patterns) == P("n.email.v1")
    assert best_match("n.email.v2", patterns) == P("n.email.%")
    assert best_match("n.sms.v1", patterns) == P("n.%")
    assert best_match("x.v1", patterns) == P("%")
    assert best_match("x.v1", patterns[:3]) is None
    assert best_match("x.v1", []) is None
