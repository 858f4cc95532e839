"""Full-jitter backoff: growth, cap, jitter bounds, equivalence with tenacity."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import pytest
import tenacity
from tenacity import RetryCallState

from mesh.resilience.backoff import backoff_ceiling, full_jitter_backoff, wait_full_jitter


def state_after(attempts: int) -> RetryCallState:
    """A tenacity retry state as seen by a wait strategy after ``attempts`` attempts."""
    state = RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempts
    return state


@pytest.fixture
def restore_global_random() -> Iterator[None]:
    saved = random.getstate()
    yield
    random.setstate(saved)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (6, 1.0), (100_000, 1.0)],
)
def test_ceiling_doubles_then_caps(attempt: int, expected: float) -> None:
    assert backoff_ceiling(attempt, base_s=0.1, cap_s=1.0) == pytest.approx(expected)


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 13, 60, 2000])
def test_ceiling_matches_tenacity_wait_exponential(attempt: int) -> None:
    tenacity_wait = tenacity.wait_exponential(multiplier=0.05, max=2.0)
    assert backoff_ceiling(attempt, 0.05, 2.0) == pytest.approx(tenacity_wait(state_after(attempt)))


@pytest.mark.parametrize(
    ("unit", "expected"), [(0.0, 0.0), (0.25, 0.1), (0.5, 0.2), (0.999_999, 0.399_999_6)]
)
def test_full_jitter_scales_the_ceiling(unit: float, expected: float) -> None:
    assert full_jitter_backoff(3, 0.1, 1.0, lambda: unit) == pytest.approx(expected)


@pytest.mark.parametrize("attempt", [1, 2, 4, 10])
def test_full_jitter_stays_in_zero_to_ceiling(attempt: int) -> None:
    rng = random.Random(1234)
    ceiling = backoff_ceiling(attempt, 0.025, 0.25)
    draws = [full_jitter_backoff(attempt, 0.025, 0.25, rng.random) for _ in range(2000)]
    assert all(0.0 <= d < ceiling for d in draws)
    assert max(draws) > 0.9 * ceiling  # uses the whole range
    assert min(draws) < 0.1 * ceiling
    assert max(draws) <= 0.25


def test_zero_cap_never_waits() -> None:
    assert full_jitter_backoff(5, 0.1, 0.0, lambda: 0.9) == 0.0


@pytest.mark.parametrize(
    ("attempt", "base_s", "cap_s", "message"),
    [
        (0, 0.1, 1.0, "attempt must be >= 1"),
        (1, -0.1, 1.0, "base_s must be finite and >= 0"),
        (1, math.inf, 1.0, "base_s must be finite and >= 0"),
        (1, 0.1, -1.0, "cap_s must be >= 0"),
        (1, 0.1, math.nan, "cap_s must be >= 0"),
    ],
)
def test_invalid_arguments(attempt: int, base_s: float, cap_s: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backoff_ceiling(attempt, base_s, cap_s)


def test_wait_strategy_validates_at_construction() -> None:
    with pytest.raises(ValueError, match="base_s"):
        wait_full_jitter(base_s=-1.0, cap_s=1.0)


def test_wait_strategy_uses_the_attempt_number() -> None:
    wait = wait_full_jitter(base_s=0.1, cap_s=1.0, random_unit=lambda: 0.5)
    assert [wait(state_after(n)) for n in (1, 2, 3, 4, 5)] == pytest.approx(
        [0.05, 0.1, 0.2, 0.4, 0.5]
    )


@pytest.mark.usefixtures("restore_global_random")
def test_wait_strategy_is_tenacity_wait_random_exponential_with_injected_rng() -> None:
    # Same seed, same draws: our strategy is a drop-in for tenacity's own one.
    random.seed(99)
    theirs = tenacity.wait_random_exponential(multiplier=0.05, max=0.5)
    expected = [theirs(state_after(n)) for n in range(1, 9)]
    ours = wait_full_jitter(base_s=0.05, cap_s=0.5, random_unit=random.Random(99).random)
    assert [ours(state_after(n)) for n in range(1, 9)] == pytest.approx(expected)
