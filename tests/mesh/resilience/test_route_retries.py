"""An edge route's retry decisions: which outcomes retry for which requests, the
attempt's time, the backoff and the budget, with an injected clock and randomness."""

from __future__ import annotations

import pytest

from mesh.resilience.outcome import CallError, CallOutcome
from mesh.resilience.retry_budget import RetryBudget, RetryBudgetSettings
from mesh.resilience.retry_policy import should_retry
from mesh.resilience.route_retries import (
    CONNECT_FAILURE,
    RESET,
    TIMEOUT,
    RouteRetryPolicy,
    fits_before,
    reason,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def policy(
    conditions: frozenset[str] = frozenset({CONNECT_FAILURE, RESET, TIMEOUT}),
    statuses: frozenset[int] = frozenset({502, 503, 504}),
    per_try_timeout: float | None = None,
    random_unit: float = 0.5,
    budget: RetryBudget | None = None,
) -> RouteRetryPolicy:
    return RouteRetryPolicy(
        max_attempts=3,
        conditions=conditions,
        statuses=statuses,
        per_try_timeout=per_try_timeout,
        backoff_base=0.025,
        backoff_max=0.25,
        replay_limit=64 * 1024,
        budget=budget or RetryBudget(RetryBudgetSettings(), clock=FakeClock()),
        random_unit=lambda: random_unit,
    )


CONNECT = CallOutcome.failed(CallError.CONNECT)
TIMED_OUT = CallOutcome.failed(CallError.TIMEOUT)
LOST = CallOutcome.failed(CallError.RESET)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (CONNECT, "connect-failure"),
        (TIMED_OUT, "timeout"),
        (LOST, "reset"),
        (CallOutcome.response(503), "503"),
    ],
)
def test_reason_is_the_retry_on_condition(outcome: CallOutcome, expected: str) -> None:
    assert reason(outcome) == expected


@pytest.mark.parametrize(
    ("outcome", "idempotent", "replayable", "expected"),
    [
        # A connect failure: nothing reached the app, any request.
        (CONNECT, False, False, True),
        (CONNECT, True, True, True),
        # After the request may have reached the app: idempotent and replayable only.
        (TIMED_OUT, True, True, True),
        (TIMED_OUT, False, True, False),
        (TIMED_OUT, True, False, False),
        (LOST, True, True, True),
        (LOST, False, True, False),
        (CallOutcome.response(503), True, True, True),
        (CallOutcome.response(503), False, True, False),
        (CallOutcome.response(502), True, False, False),
        # Backpressure is never retried at once, whatever the route lists.
        (CallOutcome.response(503, retry_after_s=1.0), True, True, False),
        # Answers the route does not list.
        (CallOutcome.response(500), True, True, False),
        (CallOutcome.response(429), True, True, False),
        (CallOutcome.response(200), True, True, False),
        (CallOutcome.response(404), True, True, False),
    ],
)
def test_retriable_by_the_default_conditions(
    outcome: CallOutcome, idempotent: bool, replayable: bool, expected: bool
) -> None:
    assert policy().retriable(outcome, idempotent, replayable) is expected


def test_only_the_conditions_listed_are_retried() -> None:
    only_503 = policy(conditions=frozenset(), statuses=frozenset({503}))
    assert not only_503.retriable(CONNECT, True, True)
    assert not only_503.retriable(TIMED_OUT, True, True)
    assert not only_503.retriable(LOST, True, True)
    assert not only_503.retriable(CallOutcome.response(502), True, True)
    assert only_503.retriable(CallOutcome.response(503), True, True)


def test_a_listed_500_is_retried_for_idempotent_requests_only() -> None:
    with_500 = policy(statuses=frozenset({500}))
    assert with_500.retriable(CallOutcome.response(500), True, True)
    assert not with_500.retriable(CallOutcome.response(500), False, True)
    assert not with_500.retriable(CallOutcome.response(503), True, True)


def test_should_retry_keeps_its_default_statuses() -> None:
    """The sidecar's rule is unchanged by the statuses parameter the edge passes."""
    assert should_retry(CallOutcome.response(503), True, True)
    assert not should_retry(CallOutcome.response(500), True, True)
    assert should_retry(CallOutcome.response(500), True, True, frozenset({500}))
    assert not should_retry(CallOutcome.response(500), False, True, frozenset({500}))


@pytest.mark.parametrize(
    ("per_try", "left", "expected"),
    [
        (None, None, None),  # no bound at all: the proxy's response_timeout applies
        (None, 3.0, 3.0),  # what is left of the request's time
        (2.0, None, 2.0),  # no deadline: the per-try timeout
        (2.0, 5.0, 2.0),  # the shorter of the two
        (2.0, 0.5, 0.5),
        (2.0, 2.0, 2.0),
    ],
)
def test_an_attempts_time(per_try: float | None, left: float | None, expected: float) -> None:
    assert policy(per_try_timeout=per_try).try_time(left) == expected


def test_backoff_is_full_jitter_doubling_to_the_cap() -> None:
    half = policy(random_unit=0.5)
    assert half.backoff(1) == pytest.approx(0.0125)
    assert half.backoff(2) == pytest.approx(0.025)
    assert half.backoff(3) == pytest.approx(0.05)
    assert half.backoff(10) == pytest.approx(0.125)  # capped at 250 ms, then halved
    assert policy(random_unit=0.0).backoff(3) == 0.0


@pytest.mark.parametrize(
    ("left", "wait", "expected"),
    [(None, 10.0, True), (1.0, 0.2, True), (0.2, 0.2, False), (0.1, 0.2, False)],
)
def test_a_retry_must_start_before_the_deadline(
    left: float | None, wait: float, expected: bool
) -> None:
    assert fits_before(left, wait) is expected


def test_the_budget_limits_retries_and_refills_with_time() -> None:
    clock = FakeClock()
    budget = RetryBudget(
        RetryBudgetSettings(ratio=0.5, min_retries_per_second=0.0, window_s=10.0), clock=clock
    )
    p = policy(budget=budget)
    for _ in range(4):
        p.budget.record_request()
    granted = 0
    while p.budget.try_acquire_retry():
        granted += 1
    assert granted == 2  # half of four requests
    assert p.budget.exhausted_total == 1
    clock.now = 11.0  # the window has passed
    p.budget.record_request()
    p.budget.record_request()
    assert p.budget.try_acquire_retry()


def test_describe_shows_the_policy() -> None:
    view = policy(per_try_timeout=2.0).describe()
    assert view["max_attempts"] == 3
    assert view["retry_on"] == ["connect-failure", "reset", "timeout", 502, 503, 504]
    assert view["per_try_timeout"] == 2.0
    assert view["budget"]["ratio"] == 0.2
    assert view["budget"]["available"] == 100  # 10 retries/s over 10 s, no traffic yet
