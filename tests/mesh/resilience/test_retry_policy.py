"""Retry decisions and the tenacity predicate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import tenacity
from tenacity import RetryCallState

from mesh.resilience.backoff import wait_full_jitter
from mesh.resilience.outcome import CallError, CallOutcome
from mesh.resilience.retry_budget import RetryBudget, RetryBudgetSettings
from mesh.resilience.retry_policy import (
    is_idempotent,
    retry_if_outcome,
    should_retry,
)


class FakeClock:
    """Monotonic seconds under the test's control."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def budget_of(retries: int) -> RetryBudget:
    """A budget that grants exactly ``retries`` retries (floor only)."""
    settings = RetryBudgetSettings(ratio=0.0, min_retries_per_second=retries / 10, window_s=10.0)
    return RetryBudget(settings, clock=FakeClock())


OK = CallOutcome.response(200, 0.01)
CONNECT = CallOutcome.failed(CallError.CONNECT, 0.01)
TIMEOUT = CallOutcome.failed(CallError.TIMEOUT, 1.0)
RESET = CallOutcome.failed(CallError.RESET, 0.01)


# --- is_idempotent -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {}, True),
        ("HEAD", {}, True),
        ("OPTIONS", {}, True),
        ("TRACE", {}, True),
        ("PUT", {}, True),
        ("DELETE", {}, True),
        ("POST", {}, False),
        ("PATCH", {}, False),
        ("CONNECT", {}, False),
        ("get", {}, False),  # methods are case-sensitive
        ("POST", {"Idempotency-Key": "8e03978e-40d5-43e8-bc93-6894a57f9324"}, True),
        ("PATCH", {"idempotency-key": "abc"}, True),
        ("POST", {"IDEMPOTENCY-KEY": "abc"}, True),
        ("POST", {"Idempotency-Key": ""}, False),
        ("POST", {"Idempotency-Key": "  "}, False),
        ("POST", {"X-Idempotency-Key": "abc"}, False),
        ("POST", {"Content-Type": "application/json"}, False),
    ],
)
def test_is_idempotent(method: str, headers: dict[str, str], expected: bool) -> None:
    assert is_idempotent(method, headers) is expected


# --- should_retry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "idempotent", "replayable", "expected"),
    [
        # connect failures: nothing was sent, any method, any body
        (CONNECT, False, False, True),
        (CONNECT, True, True, True),
        # request may have reached the upstream: idempotent and replayable only
        (TIMEOUT, True, True, True),
        (TIMEOUT, False, True, False),
        (TIMEOUT, True, False, False),
        (RESET, True, True, True),
        (RESET, False, True, False),
        (RESET, True, False, False),
        (CallOutcome.response(502), True, True, True),
        (CallOutcome.response(503), True, True, True),
        (CallOutcome.response(504), True, True, True),
        (CallOutcome.response(502), False, True, False),
        (CallOutcome.response(503), True, False, False),
        # backpressure: never retried at once
        (CallOutcome.response(503, retry_after_s=1.0), True, True, False),
        (CallOutcome.response(503, retry_after_s=0.0), True, True, False),
        (CallOutcome.response(429, retry_after_s=1.0), True, True, False),
        (CallOutcome.response(429), True, True, False),
        # application answers
        (CallOutcome.response(500), True, True, False),
        (CallOutcome.response(501), True, True, False),
        (CallOutcome.response(404), True, True, False),
        (CallOutcome.response(409), True, True, False),
        (OK, True, True, False),
        # Retry-After on a gateway status that is not a backpressure status
        (CallOutcome.response(504, retry_after_s=1.0), True, True, True),
    ],
)
def test_should_retry(
    outcome: CallOutcome, idempotent: bool, replayable: bool, expected: bool
) -> None:
    assert should_retry(outcome, idempotent, replayable) is expected


# --- retry_if_outcome, unit --------------------------------------------------------------


def finished(
    attempt: int, *, result: object = None, error: BaseException | None = None
) -> RetryCallState:
    """A tenacity retry state right after attempt number ``attempt`` finished."""
    state = RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    if error is not None:
        state.set_exception((type(error), error, None))
    else:
        state.set_result(result)
    return state


def predicate(**overrides: object) -> retry_if_outcome:
    kwargs: dict[str, object] = {"method_idempotent": True, "body_replayable": True}
    kwargs.update(overrides)
    return retry_if_outcome(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "attempt", "max_attempts", "expected"),
    [
        (CallOutcome.response(503), 1, 3, True),
        (CallOutcome.response(503), 2, 3, True),
        (CallOutcome.response(503), 3, 3, False),  # limit reached
        (CallOutcome.response(503), 1, 1, False),  # retries disabled
        (OK, 1, 3, False),
        (CallOutcome.response(429, retry_after_s=2.0), 1, 3, False),
        (CONNECT, 1, 3, True),
    ],
)
def test_predicate_decisions(
    outcome: CallOutcome, attempt: int, max_attempts: int, expected: bool
) -> None:
    check = predicate(max_attempts=max_attempts)
    assert check(finished(attempt, result=outcome)) is expected


def test_predicate_honours_the_request_flags() -> None:
    assert not predicate(method_idempotent=False)(finished(1, result=TIMEOUT))
    assert not predicate(body_replayable=False)(finished(1, result=TIMEOUT))
    assert predicate(method_idempotent=False, body_replayable=False)(finished(1, result=CONNECT))


def test_predicate_spends_budget_only_on_real_retries() -> None:
    budget = budget_of(1)
    check = predicate(budget=budget, max_attempts=2)
    assert not check(finished(1, result=OK))  # not retryable
    assert not check(finished(2, result=CONNECT))  # attempt limit
    assert budget.retries_in_window == 0
    assert check(finished(1, result=CONNECT))
    assert budget.retries_in_window == 1
    assert not check(finished(1, result=CONNECT))  # budget exhausted
    assert budget.exhausted_total == 1


def test_predicate_maps_exceptions() -> None:
    def classify(error: BaseException) -> CallOutcome | None:
        return CONNECT if isinstance(error, ConnectionRefusedError) else None

    check = predicate(outcome_of_exception=classify)
    assert check(finished(1, error=ConnectionRefusedError()))
    assert not check(finished(1, error=KeyError("bug")))
    assert not predicate()(finished(1, error=ConnectionRefusedError()))  # default: not mapped


def test_predicate_extracts_outcomes_from_results() -> None:
    def second(result: object) -> CallOutcome:
        assert isinstance(result, tuple)
        outcome = result[1]
        assert isinstance(outcome, CallOutcome)
        return outcome

    check = predicate(outcome_of=second)
    assert check(finished(1, result=("body", CallOutcome.response(502))))
    assert not check(finished(1, result=("body", OK)))


def test_predicate_rejects_results_that_are_not_outcomes() -> None:
    with pytest.raises(TypeError, match="needs the attempt to return a CallOutcome"):
        predicate()(finished(1, result="200 OK"))


def test_predicate_without_outcome_does_not_retry() -> None:
    state = RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    assert not predicate()(state)


def test_predicate_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts must be >= 1"):
        predicate(max_attempts=0)


def test_predicate_composes_with_tenacity_operators() -> None:
    never = tenacity.retry_if_result(lambda _: False)
    assert (predicate() & never)(finished(1, result=CONNECT)) is False
    assert (predicate() | never)(finished(1, result=CONNECT)) is True


# --- composition with tenacity.AsyncRetrying ---------------------------------------------


class ScriptedUpstream:
    """An attempt function replaying scripted outcomes (or raising scripted errors)."""

    def __init__(self, *script: CallOutcome | BaseException) -> None:
        self.script = list(script)
        self.attempts = 0

    async def attempt(self) -> CallOutcome:
        self.attempts += 1
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


class Sleeps:
    """tenacity sleep replacement that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def retrying(
    budget: RetryBudget,
    sleeps: Sleeps,
    *,
    idempotent: bool = True,
    max_attempts: int = 3,
    classify: Callable[[BaseException], CallOutcome | None] = lambda _: None,
) -> tenacity.AsyncRetrying:
    return tenacity.AsyncRetrying(
        retry=retry_if_outcome(
            method_idempotent=idempotent,
            body_replayable=True,
            max_attempts=max_attempts,
            budget=budget,
            outcome_of_exception=classify,
        ),
        wait=wait_full_jitter(base_s=0.1, cap_s=0.15, random_unit=lambda: 0.5),
        stop=tenacity.stop_never,
        sleep=sleeps,
    )


async def test_tenacity_retries_until_success_with_jittered_waits() -> None:
    budget, sleeps = budget_of(10), Sleeps()
    upstream = ScriptedUpstream(CONNECT, CallOutcome.response(503), OK)
    budget.record_request()
    outcome = await retrying(budget, sleeps).wraps(upstream.attempt)()
    assert outcome == OK
    assert upstream.attempts == 3
    assert sleeps.waits == pytest.approx([0.05, 0.075])  # 0.5 * min(0.15, 0.1 * 2**n)
    assert budget.retries_in_window == 2


async def test_tenacity_returns_the_last_outcome_at_the_attempt_limit() -> None:
    budget, sleeps = budget_of(10), Sleeps()
    upstream = ScriptedUpstream(*[CallOutcome.response(503)] * 3)
    outcome = await retrying(budget, sleeps, max_attempts=3).wraps(upstream.attempt)()
    assert outcome == CallOutcome.response(503)  # no RetryError: forwarded as is
    assert upstream.attempts == 3
    assert budget.retries_in_window == 2  # no token spent on the vetoed 3rd retry


async def test_tenacity_stops_when_the_budget_is_exhausted() -> None:
    budget, sleeps = budget_of(1), Sleeps()
    upstream = ScriptedUpstream(CONNECT, CONNECT, OK)
    outcome = await retrying(budget, sleeps, max_attempts=5).wraps(upstream.attempt)()
    assert outcome == CONNECT
    assert upstream.attempts == 2
    assert budget.exhausted_total == 1


async def test_tenacity_does_not_retry_unsafe_requests_or_backpressure() -> None:
    budget, sleeps = budget_of(10), Sleeps()
    post = ScriptedUpstream(CallOutcome.response(502), OK)
    assert await retrying(budget, sleeps, idempotent=False).wraps(
        post.attempt
    )() == CallOutcome.response(502)
    throttled = CallOutcome.response(429, retry_after_s=30.0)
    get = ScriptedUpstream(throttled, OK)
    assert await retrying(budget, sleeps).wraps(get.attempt)() == throttled
    assert (post.attempts, get.attempts, sleeps.waits) == (1, 1, [])
    assert budget.retries_in_window == 0


async def test_tenacity_retries_mapped_exceptions_and_reraises_others() -> None:
    def classify(error: BaseException) -> CallOutcome | None:
        return CONNECT if isinstance(error, ConnectionRefusedError) else None

    budget, sleeps = budget_of(10), Sleeps()
    flaky = ScriptedUpstream(ConnectionRefusedError(), OK)
    assert await retrying(budget, sleeps, classify=classify).wraps(flaky.attempt)() == OK
    assert flaky.attempts == 2

    buggy = ScriptedUpstream(RuntimeError("bug"), OK)
    with pytest.raises(RuntimeError, match="bug"):
        await retrying(budget, sleeps, classify=classify).wraps(buggy.attempt)()
    assert buggy.attempts == 1
