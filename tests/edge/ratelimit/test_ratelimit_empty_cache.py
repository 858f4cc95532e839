"""Known-empty buckets (edge/ratelimit/empty_cache.py)."""

from __future__ import annotations

import pytest

from edge.ratelimit.empty_cache import KnownEmptyCache


def test_refuses_until_refill_then_forgets() -> None:
    cache = KnownEmptyCache()
    cache.remember("k", tokens=0.25, at=10.0, rate=1.0)
    refusal = cache.refusal("k", 10.5, cost=1, rate=1.0, burst=5)
    assert refusal is not None and not refusal.allowed
    assert refusal.retry_after_s == pytest.approx(0.25)
    assert refusal.remaining == 0
    assert refusal.reset_after_s == pytest.approx(4.25)
    assert cache.refusal("k", 10.75, cost=1, rate=1.0, burst=5) is None
    assert len(cache) == 0


def test_only_empty_levels_are_kept() -> None:
    cache = KnownEmptyCache()
    cache.remember("k", tokens=0.5, at=0.0, rate=1.0)
    cache.remember("k", tokens=1.0, at=0.0, rate=1.0)
    assert len(cache) == 0
    assert cache.refusal("unknown", 0.0, cost=1, rate=1.0, burst=1) is None


def test_a_large_cost_is_refused_past_the_first_token() -> None:
    cache = KnownEmptyCache()
    cache.remember("k", tokens=0.0, at=0.0, rate=1.0)
    assert cache.refusal("k", 0.5, cost=1, rate=1.0, burst=5) is not None
    # After 1.5 s the entry is forgotten (not empty any more); a cost-3 request asks Redis.
    assert cache.refusal("k", 1.5, cost=3, rate=1.0, burst=5) is not None
    assert cache.refusal("k", 1.5, cost=3, rate=1.0, burst=5) is None


def test_stamp_ahead_of_now_delays_refill() -> None:
    cache = KnownEmptyCache()
    cache.remember("k", tokens=0.0, at=5.0, rate=1.0)
    refusal = cache.refusal("k", 4.0, cost=1, rate=1.0, burst=1)
    assert refusal is not None and refusal.retry_after_s == pytest.approx(2.0)


def test_capacity_is_bounded() -> None:
    cache = KnownEmptyCache(capacity=10)
    for i in range(10):
        cache.remember(f"old{i}", tokens=0.0, at=0.0, rate=1.0)
    cache.remember("new", tokens=0.0, at=5.0, rate=1.0)  # the old ones have refilled by now
    assert len(cache) == 1
    for i in range(20):
        cache.remember(f"k{i}", tokens=0.0, at=5.0, rate=1.0)
    assert len(cache) <= 10
    assert cache.refusal("k19", 5.0, cost=1, rate=1.0, burst=1) is not None
    cache.forget("k19")
    assert cache.refusal("k19", 5.0, cost=1, rate=1.0, burst=1) is None
    cache.clear()
    assert len(cache) == 0
