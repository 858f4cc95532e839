"""The in-process limiter and fallback (edge/ratelimit/local_limiter.py)."""

from __future__ import annotations

import pytest

from edge.ratelimit.limiter import LimitPolicy, LimitRequest
from edge.ratelimit.local_limiter import LocalLimiter
from edge.ratelimit.rate import parse_rate


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


USER = LimitPolicy("per-user", parse_rate("10/s burst 4"))
ROUTE = LimitPolicy("per-route", parse_rate("1/s burst 1"))


async def test_enforces_the_limit_and_reports_source() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock=clock)
    results = [await limiter.check([LimitRequest(USER, "alice")]) for _ in range(5)]
    assert [r.allowed for r in results] == [True] * 4 + [False]
    assert {r.source for r in results} == {"local"}
    assert not any(r.degraded for r in results)
    assert results[-1].retry_after_s == pytest.approx(0.1)
    assert results[-1].status == 429
    clock.now += 0.1
    assert (await limiter.check([LimitRequest(USER, "alice")])).allowed
    # Another key has its own bucket.
    assert (await limiter.check([LimitRequest(USER, "bob")])).allowed


async def test_share_follows_the_number_of_instances() -> None:
    clock = FakeClock()
    instances = 2
    limiter = LocalLimiter(clock=clock, instances=lambda: instances)
    admitted = sum([(await limiter.check([LimitRequest(USER, "a")])).allowed for _ in range(10)])
    assert admitted == 2  # burst 4 / 2 edges
    clock.now += 1.0
    admitted = sum([(await limiter.check([LimitRequest(USER, "a")])).allowed for _ in range(10)])
    assert admitted == 2  # refilled at 5/s, but capped at burst 2
    instances = 0  # nonsense counts as one edge
    clock.now += 1.0
    # The second passed under the old share (burst 2); the new share applies from now on.
    admitted = sum([(await limiter.check([LimitRequest(USER, "a")])).allowed for _ in range(10)])
    assert admitted == 2
    clock.now += 1.0
    admitted = sum([(await limiter.check([LimitRequest(USER, "a")])).allowed for _ in range(10)])
    assert admitted == 4


async def test_share_never_goes_below_one_request() -> None:
    limiter = LocalLimiter(clock=FakeClock(), instances=lambda: 50)
    assert (await limiter.check([LimitRequest(USER, "a", cost=2)])).allowed


async def test_all_or_nothing() -> None:
    limiter = LocalLimiter(clock=FakeClock())
    both = [LimitRequest(USER, "alice"), LimitRequest(ROUTE, "/orders")]
    assert (await limiter.check(both)).allowed
    refused = await limiter.check(both)
    assert not refused.allowed
    assert refused.refused_by is not None and refused.refused_by.request.policy is ROUTE
    # The per-route refusal did not take alice's tokens: 3 left of 4.
    alone = await limiter.check([LimitRequest(USER, "alice")])
    assert alone.allowed and alone.outcomes[0].remaining == 2


async def test_full_buckets_are_swept() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock=clock, sweep_interval_s=10)
    for key in ("a", "b", "c"):
        await limiter.check([LimitRequest(USER, key)])
    assert len(limiter) == 3
    clock.now += 11
    await limiter.check([LimitRequest(USER, "d")])
    assert len(limiter) == 1


async def test_duplicate_bucket_is_an_error() -> None:
    limiter = LocalLimiter(clock=FakeClock())
    with pytest.raises(ValueError, match="twice"):
        await limiter.check([LimitRequest(USER, "a"), LimitRequest(USER, "a")])


# Policies hand out the same LimitRequest for the same bucket, and the limiter finds
# buckets by that identity: reusing one request must behave exactly as new ones would.


async def test_a_reused_request_never_keeps_a_swept_bucket() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock=clock, sweep_interval_s=10)
    reused = LimitRequest(USER, "a")
    assert (await limiter.check([reused])).outcomes[0].remaining == 3
    clock.now += 11  # "a" is full again: the next check sweeps it away
    await limiter.check([LimitRequest(USER, "b")])
    assert len(limiter) == 1
    assert (await limiter.check([reused])).outcomes[0].remaining == 3
    # A new request for the same bucket sees the same bucket (one bucket, not two).
    assert (await limiter.check([LimitRequest(USER, "a")])).outcomes[0].remaining == 2
    assert len(limiter) == 2


async def test_a_reused_request_follows_the_share() -> None:
    clock = FakeClock()
    instances = 1
    limiter = LocalLimiter(clock=clock, instances=lambda: instances)
    reused = LimitRequest(USER, "a")
    assert sum([(await limiter.check([reused])).allowed for _ in range(10)]) == 4
    instances = 2
    clock.now += 10.0
    assert sum([(await limiter.check([reused])).allowed for _ in range(10)]) == 2  # burst 4 / 2


async def test_reused_requests_of_two_costs_on_one_bucket_match_new_ones() -> None:
    # At a share of 2 the burst is 2, but a cost of 3 makes its bucket hold 3: each
    # request retunes the bucket to its own capacity, reused or not.
    def run(reuse: bool) -> list[tuple[bool, int, float]]:
        clock = FakeClock()
        limiter = LocalLimiter(clock=clock, instances=lambda: 2)
        small, big = LimitRequest(USER, "a"), LimitRequest(USER, "a", cost=3)
        seen = []
        for cost, wait_s in ((3, 1.0), (1, 0.1), (3, 1.0), (1, 1.0), (3, 0.2), (3, 1.0), (1, 0)):
            request = (big if cost == 3 else small) if reuse else LimitRequest(USER, "a", cost)
            outcome = limiter.decide([request]).outcomes[0]
            seen.append((outcome.allowed, outcome.remaining, round(outcome.reset_after_s, 6)))
            clock.now += wait_s
        return seen

    fresh = run(reuse=False)
    # The sixth (cost 3) is admitted only by a bucket retuned to hold 3.
    assert [allowed for allowed, _, _ in fresh] == [True, True, False, True, False, True, True]
    assert run(reuse=True) == fresh
