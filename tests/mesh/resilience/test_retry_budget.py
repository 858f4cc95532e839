"""Retry budget: floor, ratio, their sum, window expiry, counters."""

from __future__ import annotations

import math

import pytest

from mesh.resilience.retry_budget import RetryBudget, RetryBudgetSettings


class FakeClock:
    """Monotonic seconds under the test's control."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_budget(
    ratio: float = 0.2,
    min_retries_per_second: float = 0.0,
    window_s: float = 10.0,
    window_buckets: int = 10,
    now: float = 0.0,
) -> tuple[RetryBudget, FakeClock]:
    clock = FakeClock(now)
    settings = RetryBudgetSettings(
        ratio=ratio,
        min_retries_per_second=min_retries_per_second,
        window_s=window_s,
        window_buckets=window_buckets,
    )
    return RetryBudget(settings, clock=clock), clock


def grant_all(budget: RetryBudget) -> int:
    """Acquire retries until refused; the number granted."""
    granted = 0
    while budget.try_acquire_retry():
        granted += 1
        assert granted < 10_000, "budget never ran out"
    return granted


def test_defaults_are_linkerd_and_finagle() -> None:
    settings = RetryBudgetSettings()
    assert (settings.ratio, settings.min_retries_per_second, settings.window_s) == (0.2, 10, 10)
    assert settings.floor == 100.0
    budget = RetryBudget(clock=FakeClock())
    assert budget.settings == settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ratio": -0.1}, "ratio must be finite and >= 0"),
        ({"ratio": math.inf}, "ratio must be finite and >= 0"),
        ({"min_retries_per_second": -1.0}, "min_retries_per_second must be finite and >= 0"),
        ({"min_retries_per_second": math.nan}, "min_retries_per_second must be finite"),
        ({"window_s": 0.0}, "window_s must be finite and > 0"),
        ({"window_s": math.inf}, "window_s must be finite and > 0"),
        ({"window_buckets": 0}, "window_buckets must be an integer >= 1"),
        ({"window_buckets": True}, "window_buckets must be an integer >= 1"),
    ],
)
def test_invalid_settings_name_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryBudgetSettings(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ratio", "min_rps", "window_s", "requests", "granted"),
    [
        # floor only: min_retries_per_second * window_s
        (0.0, 10.0, 10.0, 0, 100),
        (0.0, 10.0, 10.0, 500, 100),
        (0.0, 0.5, 10.0, 0, 5),
        (0.0, 0.0, 10.0, 0, 0),
        # ratio only: ratio * requests, rounded down
        (0.2, 0.0, 10.0, 0, 0),
        (0.2, 0.0, 10.0, 4, 0),
        (0.2, 0.0, 10.0, 5, 1),
        (0.2, 0.0, 10.0, 10, 2),
        (0.2, 0.0, 10.0, 14, 2),
        (0.2, 0.0, 10.0, 15, 3),
        (0.2, 0.0, 10.0, 1000, 200),
        (0.29, 0.0, 10.0, 100, 29),  # 0.29 * 100 == 28.999999999999996
        (1.5, 0.0, 10.0, 10, 15),  # more retries than requests if asked for
        # both: the sum
        (0.2, 1.0, 10.0, 50, 20),
        (0.2, 10.0, 10.0, 1000, 300),
        (0.2, 1.0, 5.0, 1, 5),  # 0.2 + 5 -> 5
    ],
)
def test_floor_and_ratio(
    ratio: float, min_rps: float, window_s: float, requests: int, granted: int
) -> None:
    budget, _ = make_budget(ratio=ratio, min_retries_per_second=min_rps, window_s=window_s)
    for _ in range(requests):
        budget.record_request()
    assert budget.available() == granted
    assert grant_all(budget) == granted
    assert budget.retries_in_window == granted
    assert budget.available() == 0
    assert budget.exhausted_total == 1


def test_refusals_are_counted_but_not_spent() -> None:
    budget, _ = make_budget(ratio=0.5)
    budget.record_request()
    budget.record_request()
    assert budget.try_acquire_retry()
    for _ in range(3):
        assert not budget.try_acquire_retry()
    assert budget.retries_in_window == 1
    assert budget.retries_total == 1
    assert budget.exhausted_total == 3
    budget.record_request()
    budget.record_request()
    assert budget.try_acquire_retry()  # a refusal did not eat into new allowance


def test_new_requests_replenish_the_budget() -> None:
    budget, _ = make_budget(ratio=0.2)
    for _ in range(5):
        budget.record_request()
    assert grant_all(budget) == 1
    for _ in range(5):
        budget.record_request()
    assert grant_all(budget) == 1
    assert budget.requests_in_window == 10
    assert budget.limit() == 2.0


@pytest.mark.parametrize(("read_at", "requests_left"), [(9.999, 10), (10.0, 0)])
def test_requests_fall_out_of_the_window(read_at: float, requests_left: int) -> None:
    budget, clock = make_budget(ratio=0.2, now=0.0)
    for _ in range(10):
        budget.record_request()
    clock.now = read_at
    assert budget.requests_in_window == requests_left
    assert grant_all(budget) == requests_left // 5


def test_retries_fall_out_of_the_window() -> None:
    budget, clock = make_budget(ratio=0.0, min_retries_per_second=0.2, window_s=10.0)
    assert grant_all(budget) == 2  # floor 0.2 * 10
    clock.now = 9.999
    assert not budget.try_acquire_retry()
    clock.now = 10.0
    assert budget.retries_in_window == 0
    assert grant_all(budget) == 2
    assert budget.retries_total == 4  # lifetime counters never decrease
    assert budget.exhausted_total == 3


def test_sliding_not_tumbling() -> None:
    budget, clock = make_budget(ratio=0.5, window_s=10.0, window_buckets=10)
    for second in range(10):  # 2 requests per second
        clock.now = float(second)
        budget.record_request()
        budget.record_request()
    assert budget.requests_in_window == 20
    clock.now = 10.0
    assert budget.requests_in_window == 18
    clock.now = 14.5
    assert budget.requests_in_window == 10
    assert budget.limit() == 5.0


def test_limit_and_available_track_retries() -> None:
    budget, _ = make_budget(ratio=0.2, min_retries_per_second=0.1, window_s=10.0)
    for _ in range(10):
        budget.record_request()
    assert budget.limit() == pytest.approx(3.0)
    assert budget.available() == 3
    assert budget.try_acquire_retry()
    assert budget.available() == 2
    assert budget.limit() == pytest.approx(3.0)
