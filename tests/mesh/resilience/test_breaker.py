"""Circuit breaker: settings, classification, open periods, and every transition."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from mesh.resilience.breaker import (
    DEFAULT_FAILURE_STATUSES,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    Permit,
    TripReason,
    is_failure,
    is_slow,
    open_duration,
)
from mesh.resilience.outcome import CallError, CallOutcome
from mesh.resilience.sliding_window import WindowTotals

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    """Monotonic seconds under the test's control."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def no_jitter() -> float:
    return 0.0


# Small, jitter-free settings so every edge is reachable in a few calls.
SMALL = BreakerSettings(
    window_size=10,
    min_calls=10,
    failure_rate_threshold=0.5,
    consecutive_failures=None,
    open_base_s=5.0,
    open_max_s=60.0,
    open_multiplier=2.0,
    open_jitter=0.0,
    half_open_trials=3,
)


class Harness:
    """A breaker on a fake clock that logs its transitions."""

    def __init__(self, settings: BreakerSettings = SMALL, now: float = 0.0) -> None:
        self.clock = FakeClock(now)
        self.transitions: list[tuple[BreakerState, BreakerState]] = []
        self.breaker = CircuitBreaker(
            settings,
            clock=self.clock,
            random_unit=no_jitter,
            on_transition=lambda old, new: self.transitions.append((old, new)),
        )

    def call(self, *, failed: bool, duration_s: float = 0.01) -> bool:
        """Acquire and settle one call; False if the breaker refused it."""
        permit = self.breaker.acquire()
        if permit is None:
            return False
        if failed:
            self.breaker.record_failure(permit, duration_s)
        else:
            self.breaker.record_success(permit, duration_s)
        return True

    def calls(self, count: int, *, failed: bool, duration_s: float = 0.01) -> None:
        for _ in range(count):
            assert self.call(failed=failed, duration_s=duration_s)

    def trip(self) -> None:
        """Drive a CLOSED breaker to OPEN through the failure rate."""
        self.calls(self.breaker.settings.min_calls, failed=True)
        assert self.breaker.state is OPEN

    def to_half_open(self) -> None:
        """Drive the breaker from CLOSED to HALF_OPEN."""
        self.trip()
        self.clock.now += self.breaker.retry_after()
        assert self.breaker.state is HALF_OPEN


# --- settings ------------------------------------------------------------------------------


def test_default_settings_follow_the_field() -> None:
    settings = BreakerSettings()
    assert settings.window_kind == "count"
    assert settings.window_size == 100
    assert settings.min_calls == 20
    assert settings.failure_rate_threshold == 0.5
    assert settings.consecutive_failures == 5
    assert not settings.slow_calls_enabled
    assert (settings.open_base_s, settings.open_max_s, settings.open_multiplier) == (5, 60, 2)
    assert settings.open_jitter == 0.1
    assert settings.half_open_trials == 3
    assert settings.failure_statuses == DEFAULT_FAILURE_STATUSES == frozenset(range(500, 600))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window_kind": "sliding"}, "window_kind must be 'count' or 'time'"),
        ({"window_size": 0}, "window_size must be an integer >= 1"),
        ({"window_size": 2.5}, "window_size must be an integer"),
        ({"window_size": True}, "window_size must be an integer"),
        ({"window_kind": "time", "window_seconds": 0}, r"window_seconds must be > 0"),
        ({"window_kind": "time", "window_seconds": math.inf}, "window_seconds must be a finite"),
        ({"window_buckets": 0}, "window_buckets must be an integer >= 1"),
        ({"min_calls": 0}, "min_calls must be an integer >= 1"),
        ({"min_calls": 101}, r"min_calls \(101\) exceeds window_size \(100\)"),
        ({"failure_rate_threshold": 0}, r"failure_rate_threshold must be in \(0, 1\]"),
        ({"failure_rate_threshold": 1.01}, r"failure_rate_threshold must be in \(0, 1\]"),
        ({"failure_rate_threshold": math.nan}, "failure_rate_threshold must be a finite"),
        ({"consecutive_failures": 0}, "consecutive_failures must be an integer >= 1"),
        ({"slow_call_threshold_s": 1.0}, "must be set together"),
        ({"slow_call_rate_threshold": 0.5}, "must be set together"),
        (
            {"slow_call_threshold_s": 0.0, "slow_call_rate_threshold": 0.5},
            "slow_call_threshold_s must be > 0",
        ),
        (
            {"slow_call_threshold_s": 1.0, "slow_call_rate_threshold": 0.0},
            r"slow_call_rate_threshold must be in \(0, 1\]",
        ),
        ({"open_base_s": 0}, "open_base_s must be > 0"),
        ({"open_max_s": 4.0}, r"open_max_s \(4.0\) must be >= open_base_s \(5.0\)"),
        ({"open_max_s": math.inf}, "open_max_s must be a finite"),
        ({"open_multiplier": 0.5}, "open_multiplier must be >= 1"),
        ({"open_jitter": -0.1}, r"open_jitter must be in \[0, 1\)"),
        ({"open_jitter": 1.0}, r"open_jitter must be in \[0, 1\)"),
        ({"half_open_trials": 0}, "half_open_trials must be an integer >= 1"),
        ({"failure_statuses": frozenset({500, 600})}, "failure_statuses must be HTTP statuses"),
        ({"failure_statuses": "5xx"}, "failure_statuses must be HTTP statuses"),
    ],
)
def test_invalid_settings_name_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerSettings(**overrides)  # type: ignore[arg-type]


def test_min_calls_above_window_size_is_fine_for_time_windows() -> None:
    assert BreakerSettings(window_kind="time", min_calls=500).min_calls == 500


def test_failure_statuses_from_a_list_become_a_frozenset() -> None:
    settings = BreakerSettings(failure_statuses=[502, 503])  # type: ignore[arg-type]
    assert settings.failure_statuses == frozenset({502, 503})
    hash(settings)  # still usable as a key


# --- classification ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (CallOutcome.response(200), False),
        (CallOutcome.response(404), False),
        (CallOutcome.response(429), False),
        (CallOutcome.response(500), True),
        (CallOutcome.response(501), True),
        (CallOutcome.response(502), True),
        (CallOutcome.response(503), True),
        (CallOutcome.response(599), True),
        (CallOutcome.response(503, retry_after_s=1.0), False),  # backpressure
        (CallOutcome.response(429, retry_after_s=1.0), False),  # backpressure
        (CallOutcome.response(500, retry_after_s=1.0), True),  # not a backpressure status
        (CallOutcome.failed(CallError.CONNECT), True),
        (CallOutcome.failed(CallError.TIMEOUT), True),
        (CallOutcome.failed(CallError.RESET), True),
    ],
)
def test_is_failure_with_defaults(outcome: CallOutcome, expected: bool) -> None:
    assert is_failure(outcome, BreakerSettings()) is expected


def test_is_failure_uses_configured_statuses() -> None:
    settings = BreakerSettings(failure_statuses=frozenset({502, 503, 504}))
    assert not is_failure(CallOutcome.response(500), settings)
    assert is_failure(CallOutcome.response(504), settings)
    assert is_failure(CallOutcome.failed(CallError.CONNECT), settings)


@pytest.mark.parametrize(
    ("duration_s", "expected"), [(0.0, False), (0.999, False), (1.0, False), (1.001, True)]
)
def test_is_slow_is_strictly_above_threshold(duration_s: float, expected: bool) -> None:
    settings = BreakerSettings(slow_call_threshold_s=1.0, slow_call_rate_threshold=0.5)
    assert is_slow(duration_s, settings) is expected


def test_is_slow_is_false_when_disabled() -> None:
    assert not is_slow(1e9, BreakerSettings())


# --- open period ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trips", "expected"),
    [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (5, 60.0), (6, 60.0), (10_000, 60.0)],
)
def test_open_duration_grows_and_caps(trips: int, expected: float) -> None:
    assert open_duration(SMALL, trips, no_jitter) == expected


def test_open_duration_does_not_overflow_with_integer_settings() -> None:
    settings = BreakerSettings(open_base_s=5, open_max_s=60, open_multiplier=3, open_jitter=0)
    assert open_duration(settings, 100_000, no_jitter) == 60


def test_open_duration_multiplier_one_is_constant() -> None:
    settings = replace(SMALL, open_multiplier=1.0)
    assert [open_duration(settings, t, no_jitter) for t in (1, 2, 50)] == [5.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("unit", "expected"),
    [(0.0, 20.0), (0.5, 19.0), (0.999_999, 20.0 * (1 - 0.1 * 0.999_999))],
)
def test_open_duration_jitter_only_shortens(unit: float, expected: float) -> None:
    settings = replace(SMALL, open_jitter=0.1)
    assert open_duration(settings, 3, lambda: unit) == pytest.approx(expected)


def test_open_duration_jitter_bounds_hold_at_the_cap() -> None:
    settings = replace(SMALL, open_jitter=0.25)
    rng = random.Random(7)
    draws = [open_duration(settings, 50, rng.random) for _ in range(1000)]
    assert all(45.0 < d <= 60.0 for d in draws)
    assert max(draws) - min(draws) > 10.0  # really spread out


def test_open_duration_rejects_zero_trips() -> None:
    with pytest.raises(ValueError, match="trips must be >= 1"):
        open_duration(SMALL, 0, no_jitter)


# --- CLOSED -> OPEN ------------------------------------------------------------------------


def test_starts_closed_and_admits() -> None:
    h = Harness()
    assert h.breaker.state is CLOSED
    assert h.breaker.acquire() is not None
    assert h.breaker.retry_after() == 0.0
    assert h.breaker.consecutive_trips == 0
    assert h.breaker.tripped_at is None
    assert h.breaker.last_trip_reason is None


@pytest.mark.parametrize(
    ("successes", "failures", "opens"),
    [
        (0, 9, False),  # 100 % failures but below min_calls
        (1, 9, True),  # exactly min_calls, 90 %
        (5, 5, True),  # exactly the threshold
        (6, 4, False),  # just under the threshold
        (0, 10, True),
    ],
)
def test_failure_rate_edges(successes: int, failures: int, opens: bool) -> None:
    h = Harness()
    h.calls(successes, failed=False)
    h.calls(failures, failed=True)
    assert h.breaker.state is (OPEN if opens else CLOSED)
    if opens:
        assert h.breaker.last_trip_reason is TripReason.FAILURE_RATE


def test_trips_on_the_call_that_reaches_min_calls_even_a_success() -> None:
    h = Harness()
    h.calls(5, failed=True)
    h.calls(4, failed=False)
    assert h.breaker.state is CLOSED  # 9 calls < min_calls
    h.calls(1, failed=False)  # 10th call: 5/10 == 0.5
    assert h.breaker.state is OPEN


def test_rate_threshold_is_exact_for_decimal_fractions() -> None:
    # 0.3 * 10 == 3.0000000000000004 > 3; the breaker compares 3 / 10 >= 0.3.
    h = Harness(replace(SMALL, failure_rate_threshold=0.3))
    h.calls(7, failed=False)
    h.calls(3, failed=True)
    assert h.breaker.state is OPEN


def test_count_window_forgets_evicted_failures() -> None:
    h = Harness()
    h.calls(4, failed=True)
    h.calls(6, failed=False)  # 40 %
    h.calls(4, failed=False)  # evicts the 4 failures
    assert h.breaker.window_totals() == WindowTotals(calls=10, failures=0, slow=0)
    h.calls(4, failed=True)  # 40 % again
    assert h.breaker.state is CLOSED
    h.calls(1, failed=True)
    assert h.breaker.state is OPEN


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_consecutive_failures_trip_without_min_calls(limit: int) -> None:
    h = Harness(replace(SMALL, consecutive_failures=limit, min_calls=10))
    h.calls(limit - 1, failed=True)
    assert h.breaker.state is CLOSED
    h.calls(1, failed=True)
    assert h.breaker.state is OPEN
    assert h.breaker.last_trip_reason is TripReason.CONSECUTIVE_FAILURES


def test_a_success_resets_the_consecutive_count() -> None:
    h = Harness(replace(SMALL, consecutive_failures=3, window_size=100, min_calls=100))
    for _ in range(5):
        h.calls(2, failed=True)
        h.calls(1, failed=False)
    assert h.breaker.state is CLOSED
    h.calls(3, failed=True)
    assert h.breaker.state is OPEN


def test_time_window_trips_within_window_only() -> None:
    settings = replace(
        SMALL, window_kind="time", window_seconds=10.0, window_buckets=10, min_calls=4
    )
    h = Harness(settings)
    h.calls(3, failed=True)
    h.clock.now = 10.0  # those 3 failures left the window
    assert h.breaker.window_totals() == WindowTotals(0, 0, 0)
    h.calls(3, failed=False)
    h.calls(1, failed=True)  # 1 / 4
    assert h.breaker.state is CLOSED
    h.clock.now = 19.999
    h.calls(1, failed=True)  # 2 / 5 still in window
    assert h.breaker.state is CLOSED
    h.calls(1, failed=True)  # 3 / 6 == 0.5
    assert h.breaker.state is OPEN


def test_time_window_min_calls_counts_only_the_window() -> None:
    settings = replace(SMALL, window_kind="time", window_seconds=2.0, window_buckets=2)
    h = Harness(settings)
    for second in range(20):  # 1 failing call per second: never 10 in 2 s
        h.clock.now = float(second)
        h.calls(1, failed=True)
    assert h.breaker.state is CLOSED


@pytest.mark.parametrize(
    ("slow", "fast", "opens"),
    [(2, 2, True), (1, 3, False), (4, 0, True)],
)
def test_slow_call_rate(slow: int, fast: int, opens: bool) -> None:
    settings = replace(SMALL, min_calls=4, slow_call_threshold_s=1.0, slow_call_rate_threshold=0.5)
    h = Harness(settings)
    h.calls(fast, failed=False, duration_s=1.0)  # exactly the threshold is not slow
    h.calls(slow, failed=False, duration_s=1.5)
    assert h.breaker.state is (OPEN if opens else CLOSED)
    if opens:
        assert h.breaker.last_trip_reason is TripReason.SLOW_CALL_RATE


def test_slow_calls_ignored_when_disabled() -> None:
    h = Harness()
    h.calls(20, failed=False, duration_s=1e6)
    assert h.breaker.state is CLOSED
    assert h.breaker.window_totals().slow == 0


# --- OPEN ----------------------------------------------------------------------------------


def test_open_refuses_until_the_period_elapses() -> None:
    h = Harness(now=100.0)
    h.trip()
    assert h.breaker.tripped_at == 100.0
    assert h.breaker.consecutive_trips == 1
    assert h.breaker.retry_after() == 5.0
    assert h.breaker.acquire() is None
    h.clock.now = 104.999
    assert h.breaker.acquire() is None
    assert h.breaker.retry_after() == pytest.approx(0.001)
    h.clock.now = 105.0
    assert h.breaker.retry_after() == 0.0
    assert h.breaker.acquire() is not None
    assert h.transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_reading_state_moves_open_to_half_open_once() -> None:
    h = Harness()
    h.trip()
    h.clock.now = 5.0
    assert h.breaker.state is HALF_OPEN
    assert h.breaker.state is HALF_OPEN
    assert h.transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_jittered_open_period_uses_random_unit() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(replace(SMALL, open_jitter=0.2), clock=clock, random_unit=lambda: 0.5)
    for _ in range(10):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record_failure(permit, 0.0)
    assert breaker.retry_after() == pytest.approx(5.0 * 0.9)


# --- HALF_OPEN -----------------------------------------------------------------------------


def test_half_open_admits_at_most_n_concurrent_trials() -> None:
    h = Harness()
    h.to_half_open()
    permits = [h.breaker.acquire() for _ in range(3)]
    assert all(p is not None for p in permits)
    assert h.breaker.acquire() is None  # the (n+1)th concurrent trial
    assert h.breaker.retry_after() == 0.0


def test_half_open_never_starts_more_trials_than_successes_needed() -> None:
    h = Harness()
    h.to_half_open()
    first, second, third = (h.breaker.acquire() for _ in range(3))
    assert first is not None and second is not None and third is not None
    h.breaker.record_success(first, 0.01)
    assert h.breaker.acquire() is None  # 2 in flight + 1 success == 3
    h.breaker.release(second)  # a cancelled trial frees its slot
    fourth = h.breaker.acquire()
    assert fourth is not None
    assert h.breaker.acquire() is None
    h.breaker.record_success(third, 0.01)
    h.breaker.record_success(fourth, 0.01)
    assert h.breaker.state is CLOSED


def test_half_open_closes_after_n_successes_and_resets() -> None:
    h = Harness()
    h.to_half_open()
    h.calls(2, failed=False)
    assert h.breaker.state is HALF_OPEN
    h.calls(1, failed=False)
    assert h.breaker.state is CLOSED
    assert h.breaker.consecutive_trips == 0
    assert h.breaker.tripped_at is None
    assert h.breaker.last_trip_reason is TripReason.FAILURE_RATE  # kept for logs
    assert h.breaker.window_totals() == WindowTotals(0, 0, 0)  # old failures forgotten
    assert h.transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


@pytest.mark.parametrize("trials", [1, 2, 5])
def test_half_open_trial_count_is_configurable(trials: int) -> None:
    h = Harness(replace(SMALL, half_open_trials=trials))
    h.to_half_open()
    permits = [h.breaker.acquire() for _ in range(trials)]
    assert h.breaker.acquire() is None
    for permit in permits:
        assert permit is not None
        assert h.breaker.state is HALF_OPEN
        h.breaker.record_success(permit, 0.01)
    assert h.breaker.state is CLOSED


def test_half_open_failure_reopens_with_a_longer_period() -> None:
    h = Harness(now=0.0)
    h.to_half_open()  # now == 5
    h.calls(2, failed=False)
    h.calls(1, failed=True)
    assert h.breaker.state is OPEN
    assert h.breaker.last_trip_reason is TripReason.TRIAL_FAILED
    assert h.breaker.consecutive_trips == 2
    assert h.breaker.retry_after() == 10.0
    assert h.breaker.tripped_at == 0.0  # out of rotation since the first trip
    assert h.transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]


def test_other_trials_in_flight_are_discarded_after_a_reopen() -> None:
    h = Harness()
    h.to_half_open()
    good = h.breaker.acquire()
    bad = h.breaker.acquire()
    assert good is not None and bad is not None
    h.breaker.record_failure(bad, 0.01)
    assert h.breaker.state is OPEN
    h.breaker.record_success(good, 0.01)  # stale: admitted in the previous half-open
    assert h.breaker.state is OPEN
    assert h.breaker.consecutive_trips == 2


def test_slow_trial_reopens_when_slow_detection_is_on() -> None:
    settings = replace(SMALL, slow_call_threshold_s=1.0, slow_call_rate_threshold=1.0)
    h = Harness(settings)
    h.to_half_open()
    h.calls(1, failed=False, duration_s=1.0)
    assert h.breaker.state is HALF_OPEN
    h.calls(1, failed=False, duration_s=2.0)
    assert h.breaker.state is OPEN
    assert h.breaker.last_trip_reason is TripReason.TRIAL_FAILED


def test_open_period_grows_per_consecutive_trip_and_resets_after_close() -> None:
    h = Harness()
    h.to_half_open()
    periods = [5.0]
    for _ in range(5):
        h.calls(1, failed=True)  # a failed trial reopens
        periods.append(h.breaker.retry_after())
        h.clock.now += h.breaker.retry_after()
        assert h.breaker.state is HALF_OPEN
    assert periods == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    h.calls(3, failed=False)
    assert h.breaker.state is CLOSED
    h.trip()
    assert h.breaker.retry_after() == 5.0
    assert h.breaker.consecutive_trips == 1


# --- callbacks -----------------------------------------------------------------------------


def test_full_cycle_fires_each_transition_exactly_once() -> None:
    h = Harness()
    h.trip()
    for _ in range(3):
        assert h.breaker.acquire() is None
    h.clock.now += 5.0
    for _ in range(3):
        _ = h.breaker.state  # reading state is what is being tested
    h.calls(3, failed=False)
    _ = h.breaker.state
    assert h.transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_callback_sees_the_new_state() -> None:
    clock = FakeClock()
    seen: list[tuple[BreakerState, BreakerState, BreakerState]] = []

    def on_transition(old: BreakerState, new: BreakerState) -> None:
        seen.append((old, new, breaker.state))

    breaker = CircuitBreaker(
        replace(SMALL, consecutive_failures=1),
        clock=clock,
        random_unit=no_jitter,
        on_transition=on_transition,
    )
    permit = breaker.acquire()
    assert permit is not None
    breaker.record_failure(permit, 0.0)
    assert seen == [(CLOSED, OPEN, OPEN)]


def test_no_callback_is_fine() -> None:
    breaker = CircuitBreaker(replace(SMALL, consecutive_failures=1), clock=FakeClock())
    permit = breaker.acquire()
    assert permit is not None
    breaker.record_failure(permit, 0.0)
    assert breaker.state is OPEN


# --- permits and outcomes ------------------------------------------------------------------


def test_permit_cannot_be_settled_twice() -> None:
    h = Harness()
    permit = h.breaker.acquire()
    assert permit is not None
    settled_before = permit.settled
    h.breaker.record_success(permit, 0.01)
    assert (settled_before, permit.settled) == (False, True)
    for settle in (
        lambda p: h.breaker.record_success(p, 0.01),
        lambda p: h.breaker.record_failure(p, 0.01),
        h.breaker.release,
        lambda p: h.breaker.record(p, CallOutcome.response(200)),
    ):
        with pytest.raises(ValueError, match="already settled"):
            settle(permit)


def test_results_admitted_while_closed_do_not_count_as_trials() -> None:
    h = Harness()
    stragglers: list[Permit] = []
    for _ in range(10):
        permit = h.breaker.acquire()
        assert permit is not None
        stragglers.append(permit)
    h.trip()  # other calls trip it while the stragglers are in flight
    h.breaker.record_success(stragglers.pop(), 0.01)  # lands in OPEN: ignored
    h.clock.now += 5.0
    assert h.breaker.state is HALF_OPEN
    for permit in stragglers[:3]:  # land in HALF_OPEN: not trial successes
        h.breaker.record_success(permit, 0.01)
    assert h.breaker.state is HALF_OPEN
    for permit in stragglers[3:]:  # nor trial failures
        h.breaker.record_failure(permit, 0.01)
    assert h.breaker.state is HALF_OPEN
    assert [h.breaker.acquire() is not None for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize(
    ("outcome", "counted_as_failure"),
    [
        (CallOutcome.response(200, 0.01), False),
        (CallOutcome.response(404, 0.01), False),
        (CallOutcome.response(503, 0.01), True),
        (CallOutcome.failed(CallError.CONNECT, 0.01), True),
        (CallOutcome.failed(CallError.TIMEOUT, 2.0), True),
    ],
)
def test_record_classifies_outcomes(outcome: CallOutcome, counted_as_failure: bool) -> None:
    h = Harness()
    permit = h.breaker.acquire()
    assert permit is not None
    h.breaker.record(permit, outcome)
    assert h.breaker.window_totals() == WindowTotals(1, int(counted_as_failure), 0)


@pytest.mark.parametrize("status", [429, 503])
def test_backpressure_is_neither_success_nor_failure(status: int) -> None:
    backpressure = CallOutcome.response(status, 0.01, retry_after_s=3.0)
    h = Harness(replace(SMALL, consecutive_failures=3))
    h.calls(2, failed=True)
    permit = h.breaker.acquire()
    assert permit is not None
    h.breaker.record(permit, backpressure)
    assert h.breaker.window_totals() == WindowTotals(2, 2, 0)
    h.calls(1, failed=True)  # the consecutive run was not broken
    assert h.breaker.state is OPEN


def test_backpressure_frees_a_half_open_trial_slot() -> None:
    h = Harness()
    h.to_half_open()
    permits = [h.breaker.acquire() for _ in range(3)]
    assert permits[0] is not None
    h.breaker.record(permits[0], CallOutcome.response(429, 0.01, retry_after_s=1.0))
    assert h.breaker.state is HALF_OPEN
    assert h.breaker.acquire() is not None
    assert h.breaker.acquire() is None


def test_release_while_closed_counts_nothing() -> None:
    h = Harness()
    permit = h.breaker.acquire()
    assert permit is not None
    h.breaker.release(permit)
    assert h.breaker.window_totals() == WindowTotals(0, 0, 0)
