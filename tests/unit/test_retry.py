"""Backoff policies are pure functions of the attempt number (randomness injected)."""

from __future__ import annotations

import pytest

from workfleet.retry import DEFAULT_BACKOFF, ConstantBackoff, ExponentialBackoff, QuadraticBackoff


def _no_jitter() -> float:
    return 0.0


@pytest.mark.parametrize("unit", [1.0, 60.0, 0.5])
def test_quadratic_is_attempt_squared_times_unit(unit: float) -> None:
    policy = QuadraticBackoff(unit=unit, rand=_no_jitter)
    assert [policy.delay(a) for a in (1, 2, 3, 4)] == [unit * n for n in (1, 4, 9, 16)]


def test_the_default_is_the_seeds_schedule() -> None:
    """simple-workflow: 1, 4, 9 minutes, plus up to 10 % jitter."""
    assert isinstance(DEFAULT_BACKOFF, QuadraticBackoff)
    assert (DEFAULT_BACKOFF.unit, DEFAULT_BACKOFF.jitter) == (60.0, 0.10)
    seed = QuadraticBackoff(rand=_no_jitter)
    assert [seed.delay(a) for a in (1, 2, 3)] == [60.0, 240.0, 540.0]


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 60.0), (0.5, 63.0), (0.999, 65.994)])
def test_quadratic_jitter_adds_up_to_ten_percent(rand: float, expected: float) -> None:
    assert QuadraticBackoff(rand=lambda: rand).delay(1) == pytest.approx(expected)


def test_quadratic_jitter_is_drawn_per_delay() -> None:
    draws = iter([0.0, 1.0])
    policy = QuadraticBackoff(unit=10, rand=lambda: next(draws))
    assert (policy.delay(1), policy.delay(1)) == (10.0, pytest.approx(11.0))


def test_quadratic_cap_applies_before_jitter() -> None:
    assert QuadraticBackoff(cap=100, rand=_no_jitter).delay(5) == 100
    assert QuadraticBackoff(cap=100, rand=lambda: 0.5).delay(5) == pytest.approx(105)
    assert QuadraticBackoff(cap=100, rand=_no_jitter).delay(1) == 60, "below the cap: untouched"


def test_quadratic_without_jitter() -> None:
    assert QuadraticBackoff(unit=2, jitter=0, rand=lambda: 0.99).delay(3) == 18


@pytest.mark.parametrize("attempt", [0, -3])
def test_attempts_below_one_count_as_the_first(attempt: int) -> None:
    assert QuadraticBackoff(rand=_no_jitter).delay(attempt) == 60
    assert ExponentialBackoff(base=3, rand=_no_jitter).delay(attempt) == 3


def test_exponential_doubles_up_to_the_cap() -> None:
    policy = ExponentialBackoff(base=1, factor=2, cap=10, rand=_no_jitter)
    assert [policy.delay(a) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_exponential_factor_and_jitter() -> None:
    policy = ExponentialBackoff(base=0.5, factor=3, cap=3600, jitter=0.2, rand=lambda: 0.5)
    assert [policy.delay(a) for a in (1, 2, 3)] == pytest.approx([0.55, 1.65, 4.95])


def test_exponential_huge_attempts_stay_capped() -> None:
    assert ExponentialBackoff(cap=60, rand=_no_jitter).delay(1000) == 60


@pytest.mark.parametrize("attempt", [1026, 2**31 - 1])
def test_exponential_never_overflows(attempt: int) -> None:
    """``attempt`` is an int4 column and ``max_attempts`` may be set that high."""
    assert ExponentialBackoff(cap=60, rand=_no_jitter).delay(attempt) == 60


def test_constant() -> None:
    policy = ConstantBackoff(2.5)
    assert {policy.delay(a) for a in (1, 2, 9)} == {2.5}


def test_policies_compare_by_settings_not_by_rand() -> None:
    assert QuadraticBackoff(unit=1, rand=_no_jitter) == QuadraticBackoff(unit=1)
    assert ExponentialBackoff(cap=5) != ExponentialBackoff(cap=6)
