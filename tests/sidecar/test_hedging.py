"""The decisions of a hedged call (sidecar/hedging.py), with an injected clock and budget."""

from __future__ import annotations

import pytest

from mesh.resilience.outcome import CallError, CallOutcome
from sidecar.hedging import HedgedCall, Step

OK = CallOutcome.response(200)
NOT_FOUND = CallOutcome.response(404)
APP_ERROR = CallOutcome.response(500)
UNAVAILABLE = CallOutcome.response(503)
BACKPRESSURE = CallOutcome.response(429, retry_after_s=1.0)
CONNECT = CallOutcome.failed(CallError.CONNECT)
TIMEOUT = CallOutcome.failed(CallError.TIMEOUT)
RESET = CallOutcome.failed(CallError.RESET)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Budget:
    """Grants ``left`` retries, then refuses; counts what was asked."""

    def __init__(self, left: int = 100) -> None:
        self.left = left
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def hedged(
    clock: Clock,
    budget: Budget,
    *,
    per_try: float = 0.2,
    max_attempts: int = 3,
    until: float | None = None,
) -> HedgedCall:
    return HedgedCall(
        per_try_timeout=per_try,
        max_attempts=max_attempts,
        until=clock.now + max_attempts * per_try if until is None else until,
        try_acquire_retry=budget,
        clock=clock,
    )


def test_a_hedge_is_due_per_try_timeout_after_the_latest_attempt_started() -> None:
    clock, budget = Clock(), Budget()
    call = hedged(clock, budget)
    assert call.hedge_in() is None  # nothing in flight yet
    assert call.start() == 1
    assert call.hedge_in() == pytest.approx(0.2)
    clock.now += 0.15
    assert call.hedge_in() == pytest.approx(0.05)
    clock.now += 0.1  # overdue: at once, never negative
    assert call.hedge_in() == 0.0
    assert call.may_hedge() and budget.asked == 1
    assert call.start() == 2 and call.in_flight == 2
    # The next one counts from the hedge's start, not the first attempt's.
    assert call.hedge_in() == pytest.approx(0.2)


def test_hedges_stop_at_max_attempts_in_flight_plus_ended() -> None:
    clock, budget = Clock(), Budget()
    call = hedged(clock, budget, max_attempts=2, until=1000.0)
    call.start()
    clock.now += 0.2
    assert call.may_hedge()
    call.start()
    assert call.hedge_in() is None  # two attempts in flight: the limit
    clock.now += 0.2
    assert not call.may_hedge()
    assert budget.asked == 1  # the refusal spent nothing


def test_max_attempts_of_one_never_hedges() -> None:
    clock, budget = Clock(), Budget()
    call = hedged(clock, budget, max_attempts=1, until=1000.0)
    call.start()
    assert call.hedge_in() is None
    assert not call.may_hedge()
    assert call.ended(TIMEOUT) is Step.ANSWER
    assert budget.asked == 0


def test_a_hedge_the_budget_refuses_is_not_made_nor_any_later_one() -> None:
    clock, budget = Clock(), Budget(left=0)
    call = hedged(clock, budget)
    call.start()
    clock.now += 0.2
    assert not call.may_hedge()
    assert budget.asked == 1
    # The first attempt runs on; no more hedges are due for this call.
    assert call.hedge_in() is None
    budget.left = 5
    clock.now += 0.2
    assert call.hedge_in() is None and not call.may_hedge()
    assert budget.asked == 1


def test_no_hedge_is_due_at_or_after_the_calls_end() -> None:
    clock, budget = Clock(), Budget()
    # A deadline 300 ms away: the hedge at 200 ms fits, the one at 400 ms does not.
    call = hedged(clock, budget, until=clock.now + 0.3)
    call.start()
    assert call.hedge_in() == pytest.approx(0.2)
    clock.now += 0.2
    assert call.may_hedge()
    call.start()
    assert call.hedge_in() is None
    assert call.time_left() == pytest.approx(0.1)
    # Time up: no hedge even if one were due.
    clock.now += 0.2
    assert call.time_left() < 0
    assert not call.may_hedge()
    assert budget.asked == 1


@pytest.mark.parametrize("usable", [OK, NOT_FOUND, APP_ERROR, BACKPRESSURE])
def test_an_answer_that_would_not_be_retried_is_the_calls_even_with_others_in_flight(
    usable: CallOutcome,
) -> None:
    clock, budget = Clock(), Budget()
    call = hedged(clock, budget)
    call.start()
    clock.now += 0.2
    call.may_hedge()
    call.start()
    assert call.ended(usable) is Step.ANSWER
    assert call.in_flight == 1  # the other is left to be cancelled


@pytest.mark.parametrize("retryable", [UNAVAILABLE, CONNECT, TIMEOUT, RESET])
def test_a_retryable_end_waits_for_the_attempt_in_flight(retryable: CallOutcome) -> None:
    clock, budget = Clock(), Budget()
    call = hedged(clock, budget)
    call.start()
    clock.now += 0.2
    assert call.may_hedge()
    call.start()
    asked = budget.asked
    assert call.ended(retryable) is Step.WAIT
    assert budget.asked == asked  # setting aside spends nothing
    assert call.in_flight == 1
    # The one in flight answers: that is the call's answer.
    assert call.ended(OK) is Step.ANSWER


def test_the_last_retryable_end_is_retried_by_the_normal_rules() -> None:
    clock, budget = Clock(), Budget()
    call = hedged(clock, budget)
    call.start()
    assert call.ended(UNAVAILABLE) is Step.RETRY  # attempts, time and budget left
    assert budget.asked == 1
    call.start()
    clock.now += 0.2
    assert call.may_hedge()
    call.start()  # the third and last
    assert call.ended(TIMEOUT) is Step.WAIT
    assert call.ended(CONNECT) is Step.ANSWER  # no attempt left: the last outcome
    assert budget.asked == 2


def test_the_last_retryable_end_is_the_calls_when_the_budget_refuses() -> None:
    clock, budget = Clock(), Budget(left=0)
    call = hedged(clock, budget)
    call.start()
    assert call.ended(RESET) is Step.ANSWER
    assert budget.asked == 1


def test_the_last_retryable_end_is_the_calls_when_its_time_is_up() -> None:
    clock, budget = Clock(), Budget()
    call = hedged(clock, budget, until=clock.now + 0.5)
    call.start()
    clock.now += 0.5
    assert call.ended(TIMEOUT) is Step.ANSWER
    assert budget.asked == 0  # not asked: no retry could start


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        hedged(Clock(), Budget(), max_attempts=0)
