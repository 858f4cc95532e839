"""Circuit breaker for one upstream instance: CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

The breaker only decides; the proxy asks `CircuitBreaker.acquire` before each
attempt and reports how the attempt ended. No I/O, no asyncio: the clock and
the jitter source are injected.

Transitions:

- CLOSED -> OPEN when, after a recorded call, ``consecutive_failures`` failures
  in a row were seen, or the window holds at least ``min_calls`` calls and its
  failure rate or slow-call rate reaches its threshold.
- OPEN -> HALF_OPEN once the open period has elapsed, noticed on the next
  `acquire` or read of `state`.
- HALF_OPEN -> CLOSED when ``half_open_trials`` trial calls have succeeded.
- HALF_OPEN -> OPEN when any trial call fails (or is slow, if slow-call
  detection is on); the open period then grows.

Defaults follow the field: failure-rate 50 % (resilience4j, Hystrix), 20 calls
minimum before rates count (Hystrix's request volume threshold; resilience4j's
100 is too many for one sidecar's view of one instance), 5 consecutive failures
(Envoy's ``consecutive_5xx``), a 100-call count window (resilience4j), and an
open period growing 5 s, 10 s, 20 s ... capped at 60 s (Envoy multiplies its
ejection time by the number of ejections; resilience4j's exponential interval).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from mesh.resilience.outcome import CallOutcome
from mesh.resilience.sliding_window import (
    Clock,
    CountWindow,
    OutcomeWindow,
    TimeWindow,
    WindowTotals,
)

#: Every 5xx status: the upstream (or a gateway in front of it) failed.
DEFAULT_FAILURE_STATUSES: frozenset[int] = frozenset(range(500, 600))


class BreakerState(StrEnum):
    """The three states of the breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class TripReason(StrEnum):
    """Why the breaker last opened (for logs and metrics labels)."""

    FAILURE_RATE = "failure_rate"
    SLOW_CALL_RATE = "slow_call_rate"
    CONSECUTIVE_FAILURES = "consecutive_failures"
    #: A half-open trial call failed or was slow.
    TRIAL_FAILED = "trial_failed"


#: Called as ``callback(old, new)`` exactly once per state change.
TransitionCallback = Callable[[BreakerState, BreakerState], None]


def _check_int(name: str, value: object, minimum: int) -> None:
    # bool is an int subclass; a YAML `true` must not pass as a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"BreakerSettings.{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(
    name: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"BreakerSettings.{name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        if math.isinf(high):
            bound = f"> {low:g}" if low_open else f">= {low:g}"
        else:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"BreakerSettings.{name} must be {bound}, got {value!r}")


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Validated, immutable settings of one circuit breaker.

    Attributes:
        window_kind: ``"count"`` (last ``window_size`` calls) or ``"time"``
            (calls of the last ``window_seconds``, in ``window_buckets`` buckets).
        window_size: calls kept by a count window.
        window_seconds: span of a time window.
        window_buckets: resolution of a time window; a call leaves it between
            ``window_seconds * (1 - 1/window_buckets)`` and ``window_seconds``
            after it finished.
        min_calls: calls the window must hold before rates can trip the breaker.
        failure_rate_threshold: trip when failures / calls >= this, in (0, 1].
        consecutive_failures: trip after this many failures in a row,
            regardless of ``min_calls``; None disables.
        slow_call_threshold_s: a call taking strictly longer is slow.
        slow_call_rate_threshold: trip when slow / calls >= this, in (0, 1].
            Slow-call detection needs both slow settings; None for both disables.
        open_base_s: open period after the first trip.
        open_max_s: upper bound of the open period (jitter included).
        open_multiplier: growth of the open period per consecutive trip (>= 1).
        open_jitter: fraction in [0, 1) by which a random draw shortens the
            open period, so breakers of many sidecars do not probe in lockstep.
        half_open_trials: trial calls admitted concurrently in HALF_OPEN, and
            successes needed to close.
        failure_statuses: response statuses counted as failures.

    Raises:
        ValueError: from ``__post_init__`` on any invalid value, naming it.
    """

    window_kind: Literal["count", "time"] = "count"
    window_size: int = 100
    window_seconds: float = 10.0
    window_buckets: int = 10
    min_calls: int = 20
    failure_rate_threshold: float = 0.5
    consecutive_failures: int | None = 5
    slow_call_threshold_s: float | None = None
    slow_call_rate_threshold: float | None = None
    open_base_s: float = 5.0
    open_max_s: float = 60.0
    open_multiplier: float = 2.0
    open_jitter: float = 0.1
    half_open_trials: int = 3
    failure_statuses: frozenset[int] = DEFAULT_FAILURE_STATUSES

    def __post_init__(self) -> None:
        if self.window_kind not in ("count", "time"):
            raise ValueError(
                f"BreakerSettings.window_kind must be 'count' or 'time', got {self.window_kind!r}"
            )
        _check_int("window_size", self.window_size, 1)
        _check_float("window_seconds", self.window_seconds, low=0, low_open=True)
        _check_int("window_buckets", self.window_buckets, 1)
        _check_int("min_calls", self.min_calls, 1)
        if self.window_kind == "count" and self.min_calls > self.window_size:
            raise ValueError(
                f"BreakerSettings.min_calls ({self.min_calls}) exceeds window_size "
                f"({self.window_size}): rates could never trip the breaker"
            )
        _check_float(
            "failure_rate_threshold", self.failure_rate_threshold, low=0, high=1, low_open=True
        )
        if self.consecutive_failures is not None:
            _check_int("consecutive_failures", self.consecutive_failures, 1)
        if (self.slow_call_threshold_s is None) != (self.slow_call_rate_threshold is None):
            raise ValueError(
                "BreakerSettings.slow_call_threshold_s and slow_call_rate_threshold "
                "must be set together (or both None to disable slow-call detection)"
            )
        if self.slow_call_threshold_s is not None:
            _check_float(
                "slow_call_threshold_s",
                self.slow_call_threshold_s,
                low=0,
                low_open=True,
            )
        if self.slow_call_rate_threshold is not None:
            _check_float(
                "slow_call_rate_threshold",
                self.slow_call_rate_threshold,
                low=0,
                high=1,
                low_open=True,
            )
        _check_float("open_base_s", self.open_base_s, low=0, low_open=True)
        _check_float("open_max_s", self.open_max_s, low=0, low_open=True)
        if self.open_max_s < self.open_base_s:
            raise ValueError(
                f"BreakerSettings.open_max_s ({self.open_max_s}) must be >= "
                f"open_base_s ({self.open_base_s})"
            )
        _check_float("open_multiplier", self.open_multiplier, low=1)
        # Below 1: a jitter of 1 could draw an open period of zero.
        _check_float("open_jitter", self.open_jitter, low=0, high=1, high_open=True)
        _check_int("half_open_trials", self.half_open_trials, 1)
        # Typed as object: a config loader may hand over a list, or garbage.
        statuses: object = self.failure_statuses
        if not isinstance(statuses, frozenset | set | list | tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses
        ):
            raise ValueError(
                f"BreakerSettings.failure_statuses must be HTTP statuses in 100..599, "
                f"got {statuses!r}"
            )
        # A list from a config file would make the frozen settings mutable and unhashable.
        object.__setattr__(self, "failure_statuses", frozenset(statuses))

    @property
    def slow_calls_enabled(self) -> bool:
        """Whether slow-call detection is on."""
        return self.slow_call_threshold_s is not None


def is_failure(outcome: CallOutcome, settings: BreakerSettings) -> bool:
    """Whether ``outcome`` counts as a failure of the upstream for the breaker.

    Transport errors (connect, timeout, reset) are failures; a response is a
    failure when its status is in ``settings.failure_statuses``, except
    backpressure (429/503 with ``Retry-After``), which shows a live upstream
    asking for less load, not a broken one.
    """
    if outcome.error is not None:
        return True
    if outcome.is_backpressure:
        return False
    return outcome.status in settings.failure_statuses


def is_slow(duration_s: float, settings: BreakerSettings) -> bool:
    """Whether a call of ``duration_s`` is slow; always False when detection is off."""
    threshold = settings.slow_call_threshold_s
    return threshold is not None and duration_s > threshold


def open_duration(settings: BreakerSettings, trips: int, random_unit: Callable[[], float]) -> float:
    """Seconds the breaker stays open after its ``trips``-th consecutive trip.

    ``min(open_max_s, open_base_s * open_multiplier ** (trips - 1))``, then
    shortened by a random fraction of at most ``open_jitter``: the result lies
    in ``[nominal * (1 - open_jitter), nominal]``. Jitter only shortens, so
    ``open_max_s`` is a hard bound yet breakers stuck at the cap still spread out.

    Args:
        trips: consecutive trips without closing in between, >= 1.
        random_unit: returns a float in [0, 1), e.g. ``random.Random(seed).random``.
    """
    if trips < 1:
        raise ValueError(f"trips must be >= 1, got {trips!r}")
    try:
        nominal = settings.open_base_s * settings.open_multiplier ** (trips - 1)
    except OverflowError:
        nominal = settings.open_max_s
    nominal = min(nominal, settings.open_max_s)
    return nominal * (1.0 - settings.open_jitter * random_unit())


class Permit:
    """Admission of one call by `CircuitBreaker.acquire`; settle it exactly once.

    A permit remembers the breaker's state epoch, so the result of a call
    admitted before a state change (a slow call that outlives a trip) is
    discarded instead of being counted against the new state.
    """

    __slots__ = ("_epoch", "_settled")

    def __init__(self, epoch: int) -> None:
        self._epoch = epoch
        self._settled = False

    @property
    def settled(self) -> bool:
        """Whether the permit was already recorded or released."""
        return self._settled


class CircuitBreaker:
    """Circuit breaker state machine for one upstream instance.

    Usage per attempt::

        permit = breaker.acquire()
        if permit is None:
            ...  # fail fast; breaker.retry_after() says for how long
        else:
            outcome = await attempt()  # never raises past this point
            breaker.record(permit, outcome)

    Every permit must be settled exactly once, by `record`, `record_success`,
    `record_failure` or `release` (cancelled call); otherwise a half-open
    breaker keeps the trial slot forever.

    Not thread-safe; the sidecar uses it from one event loop.
    """

    def __init__(
        self,
        settings: BreakerSettings,
        *,
        clock: Clock,
        random_unit: Callable[[], float] = random.random,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        """Create a CLOSED breaker.

        Args:
            clock: monotonic seconds.
            random_unit: returns a float in [0, 1), for the open-period jitter.
            on_transition: called as ``(old, new)`` after each state change,
                once per change, with the breaker already in ``new``. An
                exception it raises propagates to the caller of the method that
                caused the change; the breaker state is consistent regardless.
        """
        self._settings = settings
        self._clock = clock
        self._random_unit = random_unit
        self._on_transition = on_transition
        self._window: OutcomeWindow = (
            CountWindow(settings.window_size)
            if settings.window_kind == "count"
            else TimeWindow(
                window_s=settings.window_seconds, buckets=settings.window_buckets, clock=clock
            )
        )
        self._state = BreakerState.CLOSED
        # Bumped on every transition; permits from an older epoch are stale.
        self._epoch = 0
        self._consecutive_failures = 0
        self._consecutive_trips = 0
        self._open_until = 0.0
        self._tripped_at: float | None = None
        self._last_trip_reason: TripReason | None = None
        self._trials_in_flight = 0
        self._trial_successes = 0

    @property
    def settings(self) -> BreakerSettings:
        """The settings the breaker was built with."""
        return self._settings

    @property
    def state(self) -> BreakerState:
        """The current state.

        Reading it moves an OPEN breaker whose open period has elapsed to
        HALF_OPEN (firing the callback), so a breaker nobody sends traffic to,
        because it was ejected, still becomes eligible for trial calls.
        """
        self._poll_open()
        return self._state

    @property
    def consecutive_trips(self) -> int:
        """Trips since the breaker was last CLOSED (0 while CLOSED)."""
        return self._consecutive_trips

    @property
    def tripped_at(self) -> float | None:
        """Clock time of the first trip since the breaker was last CLOSED; None while CLOSED.

        This is when the instance left rotation; `mesh.resilience.ejection`
        orders ejections by it.
        """
        return self._tripped_at

    @property
    def last_trip_reason(self) -> TripReason | None:
        """Why the breaker last opened; None if it never did. Kept after closing."""
        return self._last_trip_reason

    def retry_after(self) -> float:
        """Seconds until an OPEN breaker admits trial calls; 0.0 in any other state."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def window_totals(self) -> WindowTotals:
        """Calls, failures and slow calls in the current CLOSED-state window (for metrics)."""
        return self._window.totals()

    def acquire(self) -> Permit | None:
        """Ask to send one call; None means refused (fail fast).

        CLOSED admits every call. OPEN refuses until the open period elapses,
        then becomes HALF_OPEN. HALF_OPEN admits a trial only while trials in
        flight plus trials already succeeded stay below ``half_open_trials``:
        the (n+1)th concurrent trial is refused, and no more trials start than
        successes are still needed.
        """
        if self._state is BreakerState.CLOSED:  # nearly every call: nothing to poll
            return Permit(self._epoch)
        state = self.state
        if state is BreakerState.OPEN:
            return None
        if self._trials_in_flight + self._trial_successes >= self._settings.half_open_trials:
            return None
        self._trials_in_flight += 1
        return Permit(self._epoch)

    def record(self, permit: Permit, outcome: CallOutcome) -> None:
        """Settle ``permit`` with the attempt's outcome.

        Backpressure (429/503 with ``Retry-After``) settles the permit like
        `release`: it says nothing about the instance's health. Otherwise the
        call is a failure per `is_failure` and slow per `is_slow`.

        Raises:
            ValueError: if the permit was already settled.
        """
        if outcome.is_backpressure:
            self.release(permit)
        else:
            self._settle(permit, is_failure(outcome, self._settings), outcome.duration_s)

    def record_success(self, permit: Permit, duration_s: float) -> None:
        """Settle ``permit`` as a successful call that took ``duration_s``."""
        self._settle(permit, False, duration_s)

    def record_failure(self, permit: Permit, duration_s: float) -> None:
        """Settle ``permit`` as a failed call that took ``duration_s``."""
        self._settle(permit, True, duration_s)

    def release(self, permit: Permit) -> None:
        """Settle ``permit`` without an outcome (call cancelled, or backpressure).

        Nothing is counted; a half-open trial slot is freed for another trial.

        Raises:
            ValueError: if the permit was already settled.
        """
        if self._take(permit) and self._state is BreakerState.HALF_OPEN:
            self._trials_in_flight -= 1

    def _take(self, permit: Permit) -> bool:
        """Mark ``permit`` settled; True if it belongs to the current state epoch."""
        if permit._settled:
            raise ValueError("breaker permit already settled")
        permit._settled = True
        return permit._epoch == self._epoch

    def _settle(self, permit: Permit, failed: bool, duration_s: float) -> None:
        if not self._take(permit):
            # Admitted under an earlier state: it must not sway the current one.
            return
        slow = is_slow(duration_s, self._settings)
        # Permits are only issued in CLOSED and HALF_OPEN and every transition
        # starts a new epoch, so a current-epoch permit never meets OPEN.
        if self._state is BreakerState.CLOSED:
            self._record_closed(failed, slow)
            return
        self._trials_in_flight -= 1
        if failed or slow:
            self._trip(TripReason.TRIAL_FAILED)
            return
        self._trial_successes += 1
        if self._trial_successes >= self._settings.half_open_trials:
            self._close()

    def _record_closed(self, failed: bool, slow: bool) -> None:
        settings = self._settings
        calls, failures, slow_calls = self._window.record(failed, slow)
        self._consecutive_failures = self._consecutive_failures + 1 if failed else 0
        limit = settings.consecutive_failures
        if limit is not None and self._consecutive_failures >= limit:
            self._trip(TripReason.CONSECUTIVE_FAILURES)
            return
        if calls < settings.min_calls:
            return
        # Division, not threshold * calls: 3 / 10 == 0.3 exactly, 0.3 * 10 does not.
        if failures / calls >= settings.failure_rate_threshold:
            self._trip(TripReason.FAILURE_RATE)
        elif (
            settings.slow_call_rate_threshold is not None
            and slow_calls / calls >= settings.slow_call_rate_threshold
        ):
            self._trip(TripReason.SLOW_CALL_RATE)

    def _poll_open(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._transition(BreakerState.HALF_OPEN)

    def _trip(self, reason: TripReason) -> None:
        now = self._clock()
        self._consecutive_trips += 1
        if self._tripped_at is None:
            self._tripped_at = now
        self._last_trip_reason = reason
        self._open_until = now + open_duration(
            self._settings, self._consecutive_trips, self._random_unit
        )
        self._transition(BreakerState.OPEN)

    def _close(self) -> None:
        # A fresh start: old failures must not re-trip the breaker, and the next
        # trip opens for the base period again.
        self._window.clear()
        self._consecutive_failures = 0
        self._consecutive_trips = 0
        self._tripped_at = None
        self._transition(BreakerState.CLOSED)

    def _transition(self, new: BreakerState) -> None:
        old = self._state
        self._state = new
        self._epoch += 1
        self._trials_in_flight = 0
        self._trial_successes = 0
        if self._on_transition is not None:
            self._on_transition(old, new)
