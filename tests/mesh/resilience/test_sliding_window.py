"""Sliding windows: ring eviction, bucket expiry edges, clearing."""

from __future__ import annotations

import pytest

from mesh.resilience.sliding_window import (
    BucketedCounter,
    CountWindow,
    TimeWindow,
    WindowTotals,
)


class FakeClock:
    """Monotonic seconds under the test's control."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- CountWindow ---------------------------------------------------------------------------


def test_count_window_accumulates_until_full() -> None:
    window = CountWindow(3)
    assert window.totals() == WindowTotals(0, 0, 0)
    window.record(failed=True, slow=False)
    window.record(failed=False, slow=True)
    window.record(failed=True, slow=True)
    assert window.totals() == WindowTotals(calls=3, failures=2, slow=2)


def test_count_window_evicts_oldest() -> None:
    window = CountWindow(3)
    window.record(failed=True, slow=True)  # evicted by the 4th call
    window.record(failed=False, slow=False)
    window.record(failed=False, slow=False)
    window.record(failed=False, slow=False)
    assert window.totals() == WindowTotals(calls=3, failures=0, slow=0)
    window.record(failed=True, slow=False)
    assert window.totals() == WindowTotals(calls=3, failures=1, slow=0)


def test_count_window_of_one() -> None:
    window = CountWindow(1)
    window.record(failed=True, slow=True)
    assert window.totals() == WindowTotals(1, 1, 1)
    window.record(failed=False, slow=False)
    assert window.totals() == WindowTotals(1, 0, 0)


def test_count_window_clear() -> None:
    window = CountWindow(2)
    window.record(failed=True, slow=True)
    window.record(failed=True, slow=True)
    window.clear()
    assert window.totals() == WindowTotals(0, 0, 0)
    window.record(failed=True, slow=False)
    assert window.totals() == WindowTotals(1, 1, 0)


def test_count_window_rejects_empty_size() -> None:
    with pytest.raises(ValueError, match="size must be >= 1"):
        CountWindow(0)


# --- BucketedCounter -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counted_at", "read_at", "still_counted"),
    [
        # window 10 s in 10 buckets of 1 s; at t the window is buckets floor(t)-9 .. floor(t)
        (0.0, 9.999, True),
        (0.0, 10.0, False),
        (0.5, 9.999, True),
        (0.5, 10.0, False),  # left after 9.5 s: between window - bucket and window
        (0.999, 10.0, False),
        (1.0, 10.0, True),
        (1.0, 10.999, True),
        (1.0, 11.0, False),
        (5.0, 100.0, False),  # many windows later
    ],
)
def test_bucket_expiry_edges(counted_at: float, read_at: float, still_counted: bool) -> None:
    clock = FakeClock(0.0)
    counter = BucketedCounter(fields=1, window_s=10.0, buckets=10, clock=clock)
    clock.now = counted_at
    counter.add(0)
    clock.now = read_at
    assert counter.total(0) == (1 if still_counted else 0)


def test_buckets_expire_one_by_one() -> None:
    clock = FakeClock(0.0)
    counter = BucketedCounter(fields=2, window_s=4.0, buckets=4, clock=clock)
    for second in range(4):
        clock.now = float(second)
        counter.add(0, second + 1)  # 1, 2, 3, 4
        counter.add(1)
    assert counter.totals() == (10, 4)
    clock.now = 4.0
    assert counter.totals() == (9, 3)
    clock.now = 6.0  # skips a bucket: two expire at once
    assert counter.totals() == (4, 1)
    clock.now = 7.0
    assert counter.totals() == (0, 0)


def test_fractional_buckets() -> None:
    clock = FakeClock(0.0)
    counter = BucketedCounter(fields=1, window_s=1.0, buckets=4, clock=clock)
    counter.add(0)
    clock.now = 0.25
    counter.add(0)
    clock.now = 0.999
    assert counter.total(0) == 2
    clock.now = 1.0
    assert counter.total(0) == 1
    clock.now = 1.25
    assert counter.total(0) == 0


def test_clock_stepping_back_keeps_counts() -> None:
    clock = FakeClock(100.0)
    counter = BucketedCounter(fields=1, window_s=10.0, buckets=10, clock=clock)
    counter.add(0)
    clock.now = 50.0
    counter.add(0)  # lands in the current (newest) bucket
    assert counter.total(0) == 2
    clock.now = 109.999
    assert counter.total(0) == 2
    clock.now = 110.0
    assert counter.total(0) == 0


def test_counter_clear() -> None:
    clock = FakeClock(3.0)
    counter = BucketedCounter(fields=2, window_s=10.0, buckets=10, clock=clock)
    counter.add(0, 5)
    counter.add(1, 2)
    counter.clear()
    assert counter.totals() == (0, 0)
    counter.add(1)
    assert counter.totals() == (0, 1)


@pytest.mark.parametrize("field", [-1, 2])
def test_counter_rejects_unknown_field(field: int) -> None:
    counter = BucketedCounter(fields=2, window_s=1.0, buckets=1, clock=FakeClock())
    with pytest.raises(IndexError, match="out of range"):
        counter.add(field)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fields": 0, "window_s": 1.0, "buckets": 1}, "fields must be >= 1"),
        ({"fields": 1, "window_s": 0.0, "buckets": 1}, "window_s must be finite and > 0"),
        ({"fields": 1, "window_s": float("inf"), "buckets": 1}, "window_s must be finite"),
        ({"fields": 1, "window_s": 1.0, "buckets": 0}, "buckets must be >= 1"),
    ],
)
def test_counter_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BucketedCounter(clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


# --- TimeWindow ----------------------------------------------------------------------------


def test_time_window_totals_and_expiry() -> None:
    clock = FakeClock(0.0)
    window = TimeWindow(window_s=10.0, buckets=10, clock=clock)
    window.record(failed=True, slow=False)
    clock.now = 5.0
    window.record(failed=False, slow=True)
    window.record(failed=True, slow=True)
    assert window.totals() == WindowTotals(calls=3, failures=2, slow=2)
    clock.now = 10.0
    assert window.totals() == WindowTotals(calls=2, failures=1, slow=2)
    clock.now = 15.0
    assert window.totals() == WindowTotals(0, 0, 0)


def test_time_window_clear() -> None:
    clock = FakeClock(0.0)
    window = TimeWindow(window_s=10.0, buckets=10, clock=clock)
    window.record(failed=True, slow=True)
    window.clear()
    assert window.totals() == WindowTotals(0, 0, 0)


@pytest.mark.parametrize("kind", ["count", "time"])
def test_record_returns_the_totals_after_the_call(kind: str) -> None:
    window: CountWindow | TimeWindow = (
        CountWindow(2)
        if kind == "count"
        else TimeWindow(window_s=10, buckets=10, clock=FakeClock())
    )
    seen = [window.record(True, False), window.record(False, True), window.record(False, False)]
    assert seen[:2] == [(1, 1, 0), (2, 1, 1)]
    # The count window of two has evicted the failure; the time window keeps all three.
    assert seen[2] == ((2, 0, 1) if kind == "count" else (3, 1, 1))
    assert seen[2] == tuple(window.totals())
