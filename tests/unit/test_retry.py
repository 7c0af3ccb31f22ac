"""Backoff policies are pure functions of the attempt number (randomness injected)."""

from __future__ import annotations

import pytest

from workfleet.retry import ConstantBackoff, ExponentialBackoff, QuadraticBackoff


def test_quadratic_matches_the_seed_schedule() -> None:
    policy = QuadraticBackoff(rand=lambda: 0.0)
    assert [policy.delay(a) for a in (1, 2, 3)] == [60.0, 240.0, 540.0]


def test_quadratic_jitter_is_at_most_ten_percent() -> None:
    assert QuadraticBackoff(rand=lambda: 0.999).delay(1) == pytest.approx(65.994)


def test_quadratic_cap() -> None:
    assert QuadraticBackoff(cap=100, rand=lambda: 0.0).delay(5) == 100


def test_exponential_with_cap() -> None:
    policy = ExponentialBackoff(base=1, factor=2, cap=10, rand=lambda: 0.0)
    assert [policy.delay(a) for a in range(1, 6)] == [1, 2, 4, 8, 10]


def test_constant() -> None:
    assert ConstantBackoff(2.5).delay(9) == 2.5
