"""Request and result types (edge/ratelimit/limiter.py)."""

from __future__ import annotations

import gc
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from edge.ratelimit import LocalLimiter, RedisLimiter
from edge.ratelimit.limiter import (
    Limiter,
    LimitOutcome,
    LimitPolicy,
    LimitRequest,
    LimitResult,
    whole_seconds,
)
from edge.ratelimit.rate import parse_rate

POLICY = LimitPolicy("p", parse_rate("10/s burst 5"))
OTHER = LimitPolicy("q", parse_rate("1/s"))


def test_policy_and_request_validation() -> None:
    with pytest.raises(ValueError, match="policy name"):
        LimitPolicy("", POLICY.rate)
    with pytest.raises(ValueError, match="policy name"):
        LimitPolicy("a:b", POLICY.rate)
    with pytest.raises(ValueError, match="between 0 and its burst 5"):
        LimitRequest(POLICY, "k", cost=6)
    with pytest.raises(ValueError, match="between 0"):
        LimitRequest(POLICY, "k", cost=-1)
    LimitRequest(POLICY, "k", cost=0)


def test_what_a_limiter_keeps_on_a_request_is_no_part_of_it() -> None:
    kept = LimitRequest(POLICY, "k", partition="k")
    kept.owner = object()
    kept.packed = b"$1\r\nk\r\n"
    kept.argv = b"$3\r\n1 1\r\n"
    kept.memo_text = b"4"
    kept.memo = LimitResult(True, "redis", False, (kept,))
    fresh = LimitRequest(POLICY, "k", partition="k")
    assert kept == fresh and hash(kept) == hash(fresh) and repr(kept) == repr(fresh)
    copied = replace(kept, cost=2)
    assert copied.owner is None and copied.packed == b"" and copied.memo is None


def _remembered(n: int) -> list[LimitRequest]:
    """``n`` requests each holding a memo of a check of it alone, as the Redis limiter
    leaves them: a result whose outcome names the request (a reference cycle)."""
    made = []
    for i in range(n):
        limit = LimitRequest(POLICY, f"k{i}")
        outcome = LimitOutcome(limit, True, 4, 0.1, 0.0)
        limit.memo = LimitResult(True, "redis", False, (limit,), (outcome,))
        made.append(limit)
    return made


def _left_to_the_collector(unlink: bool) -> int:
    """How many objects the collector finds unreachable once 100 remembered requests
    are dropped, unlinked first or not (with the collector paused until then)."""
    gc.disable()
    try:
        gc.collect()
        made = _remembered(100)
        if unlink:
            for limit in made:
                limit.unlink()
        del made
        return gc.collect()
    finally:
        gc.enable()


def test_an_unlinked_request_is_freed_without_the_collector() -> None:
    assert _left_to_the_collector(unlink=False) >= 100 * 4  # request, result, outcome, tuples
    assert _left_to_the_collector(unlink=True) < 100  # nothing of theirs (stray garbage aside)
    [limit] = _remembered(1)
    limit.unlink()
    assert limit.memo is None


@pytest.mark.parametrize(
    ("seconds", "whole"), [(0.0, 0), (0.001, 1), (1.0, 1), (1.0000000001, 1), (1.01, 2), (-3, 0)]
)
def test_whole_seconds(seconds: float, whole: int) -> None:
    assert whole_seconds(seconds) == whole


def test_headers_of_an_admitted_request_describe_the_tightest_limit() -> None:
    a, b = LimitRequest(POLICY, "a"), LimitRequest(OTHER, "b")
    result = LimitResult(
        allowed=True,
        source="redis",
        degraded=False,
        requests=(a, b),
        outcomes=(LimitOutcome(a, True, 3, 0.2, 0.0), LimitOutcome(b, True, 0, 0.9, 0.0)),
    )
    assert result.status == 200
    assert result.binding is not None and result.binding.request is b
    assert result.reset_seconds == 1
    assert result.retry_after_seconds == 0
    assert result.refused_by is None


def test_refusal_headers_agree() -> None:
    a, b = LimitRequest(POLICY, "a"), LimitRequest(OTHER, "b")
    result = LimitResult(
        allowed=False,
        source="redis",
        degraded=False,
        requests=(a, b),
        outcomes=(LimitOutcome(a, False, 0, 0.5, 0.1), LimitOutcome(b, False, 0, 3.0, 2.3)),
        retry_after_s=2.3,
    )
    assert result.status == 429
    assert result.refused_by is not None and result.refused_by.request is b
    assert result.retry_after_seconds == 3 == result.reset_seconds


def test_failure_mode_results() -> None:
    closed = LimitResult(
        allowed=False, source="closed", degraded=True, requests=(), retry_after_s=0.5
    )
    assert closed.status == 503 and closed.retry_after_seconds == 1
    assert closed.binding is None and closed.reset_seconds is None
    opened = LimitResult(allowed=True, source="open", degraded=True, requests=())
    assert opened.status == 200 and opened.reset_seconds is None


def test_both_limiters_satisfy_the_protocol() -> None:
    # Checked by mypy: the HTTP filter can hold either behind the protocol.
    limiters: list[Limiter] = [LocalLimiter(), RedisLimiter(Redis())]
    assert len(limiters) == 2
