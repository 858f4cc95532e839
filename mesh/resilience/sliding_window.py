"""Sliding-window aggregates with O(1) updates, for the breaker and the retry budget.

Two shapes:

- `CountWindow` keeps the outcomes of the last N calls in a ring buffer.
- `BucketedCounter` keeps integer counters over the last ``window_s`` seconds,
  split into ``buckets`` equal buckets; `TimeWindow` adapts it to call outcomes.

Nothing here reads the real time: time-based windows take an injected `Clock`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

#: Monotonic seconds; ``time.monotonic`` in production, a fake in tests.
Clock = Callable[[], float]


class WindowTotals(NamedTuple):
    """Aggregates over a window: calls recorded, and how many failed / were slow."""

    calls: int
    failures: int
    slow: int


class OutcomeWindow(Protocol):
    """A sliding window of call outcomes, as the circuit breaker consumes it."""

    def record(self, failed: bool, slow: bool) -> tuple[int, int, int]:
        """Add one finished call; the window's (calls, failures, slow calls) after it (a
        plain tuple: the breaker reads them on every call, and a WindowTotals costs
        several times as much to make)."""

    def totals(self) -> WindowTotals:
        """Aggregates over the calls currently inside the window."""

    def clear(self) -> None:
        """Forget every recorded call."""


# Per-slot flags in CountWindow's ring; a zero byte is an empty slot.
_OCCUPIED = 1
_FAILED = 2
_SLOW = 4


class CountWindow:
    """The outcomes of the last ``size`` calls (resilience4j's COUNT_BASED window).

    `record` and `totals` are O(1): the ring keeps running totals and subtracts
    the evicted slot instead of rescanning.
    """

    __slots__ = ("_calls", "_failures", "_next", "_ring", "_slow")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"CountWindow size must be >= 1, got {size!r}")
        self._ring = bytearray(size)
        self._next = 0
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def record(self, failed: bool, slow: bool) -> tuple[int, int, int]:
        """Add one call, evicting the oldest once the window is full; the totals after."""
        evicted = self._ring[self._next]
        if evicted & _OCCUPIED:
            self._calls -= 1
            self._failures -= bool(evicted & _FAILED)
            self._slow -= bool(evicted & _SLOW)
        self._ring[self._next] = _OCCUPIED | (_FAILED if failed else 0) | (_SLOW if slow else 0)
        self._calls += 1
        self._failures += failed
        self._slow += slow
        self._next = (self._next + 1) % len(self._ring)
        return self._calls, self._failures, self._slow

    def totals(self) -> WindowTotals:
        """Aggregates over at most the last ``size`` calls."""
        return WindowTotals(self._calls, self._failures, self._slow)

    def clear(self) -> None:
        """Forget every recorded call."""
        self._ring[:] = bytes(len(self._ring))
        self._next = 0
        self._calls = self._failures = self._slow = 0


class BucketedCounter:
    """``fields`` integer counters summed over a sliding time window.

    Time is cut into buckets of ``window_s / buckets`` seconds, numbered
    ``floor(t / bucket_s)``. At time ``t`` the window holds the current bucket
    and the ``buckets - 1`` before it, so an event leaves the window between
    ``window_s - bucket_s`` and ``window_s`` seconds after it was counted, and
    never later.

    Each operation first expires the buckets that slid out since the last one:
    O(min(elapsed buckets, buckets)), i.e. O(1) per call amortised and bounded.
    A clock that steps backwards is treated as standing still, so counts never
    move into the past.
    """

    __slots__ = ("_bucket_s", "_buckets", "_clock", "_counts", "_fields", "_head", "_totals")

    def __init__(self, *, fields: int, window_s: float, buckets: int, clock: Clock) -> None:
        if fields < 1:
            raise ValueError(f"BucketedCounter fields must be >= 1, got {fields!r}")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"BucketedCounter window_s must be finite and > 0, got {window_s!r}")
        if buckets < 1:
            raise ValueError(f"BucketedCounter buckets must be >= 1, got {buckets!r}")
        self._fields = fields
        self._buckets = buckets
        self._bucket_s = window_s / buckets
        self._clock = clock
        # Flat layout: bucket b, field f lives at b * fields + f.
        self._counts = [0] * (buckets * fields)
        self._totals = [0] * fields
        self._head = self._bucket_index(clock())

    def add(self, field: int, amount: int = 1) -> None:
        """Add ``amount`` to counter ``field`` in the current bucket."""
        if not 0 <= field < self._fields:
            # An out-of-range field would silently land in a neighbouring bucket.
            raise IndexError(f"BucketedCounter field {field!r} out of range 0..{self._fields - 1}")
        self._advance()
        self._counts[(self._head % self._buckets) * self._fields + field] += amount
        self._totals[field] += amount

    def total(self, field: int) -> int:
        """Sum of counter ``field`` over the window as of now."""
        self._advance()
        return self._totals[field]

    def totals(self) -> tuple[int, ...]:
        """Sums of every counter over the window as of now."""
        self._advance()
        return tuple(self._totals)

    def clear(self) -> None:
        """Forget every count."""
        self._counts = [0] * len(self._counts)
        self._totals = [0] * self._fields
        self._head = max(self._head, self._bucket_index(self._clock()))

    def _bucket_index(self, now: float) -> int:
        return math.floor(now / self._bucket_s)

    def _advance(self) -> None:
        index = self._bucket_index(self._clock())
        if index <= self._head:
            return
        # Bucket slots (head+1 .. index) mod n still hold counts from a full window ago.
        for step in range(1, min(index - self._head, self._buckets) + 1):
            base = ((self._head + step) % self._buckets) * self._fields
            for field in range(self._fields):
                self._totals[field] -= self._counts[base + field]
                self._counts[base + field] = 0
        self._head = index


_CALLS, _FAILURES, _SLOW_CALLS = 0, 1, 2


class TimeWindow:
    """The outcomes of the calls of the last ``window_s`` seconds (TIME_BASED window).

    See `BucketedCounter` for exactly when a call leaves the window.
    """

    __slots__ = ("_counter",)

    def __init__(self, *, window_s: float, buckets: int, clock: Clock) -> None:
        self._counter = BucketedCounter(fields=3, window_s=window_s, buckets=buckets, clock=clock)

    def record(self, failed: bool, slow: bool) -> tuple[int, int, int]:
        """Add one call at the current time; the totals after."""
        self._counter.add(_CALLS)
        if failed:
            self._counter.add(_FAILURES)
        if slow:
            self._counter.add(_SLOW_CALLS)
        calls, failures, slow_calls = self._counter.totals()
        return calls, failures, slow_calls

    def totals(self) -> WindowTotals:
        """Aggregates over the calls of the window as of now."""
        calls, failures, slow = self._counter.totals()
        return WindowTotals(calls, failures, slow)

    def clear(self) -> None:
        """Forget every recorded call."""
        self._counter.clear()
