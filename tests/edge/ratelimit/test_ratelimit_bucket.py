"""Token-bucket arithmetic with an injected clock (edge/ratelimit/bucket.py)."""

from __future__ import annotations

import random

import pytest

from edge.ratelimit.bucket import TokenBucket, decision, levels, refill, seconds_until, take_all


def test_starts_full_and_spends_its_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=100.0)
    decisions = [bucket.take(100.0) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after_s == pytest.approx(0.1)
    assert refused.reset_after_s == pytest.approx(0.5)


def test_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0, tokens=0.0)
    assert not bucket.take(0.05).allowed
    d = bucket.take(0.1)
    assert d.allowed and d.remaining == 0
    assert d.tokens == pytest.approx(0.0)
    assert bucket.take(0.35).allowed  # 2.5 tokens refilled, 1 taken
    assert bucket.level(0.35) == pytest.approx(1.5)


def test_burst_caps_the_level_after_a_long_idle() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0, tokens=0.0)
    assert bucket.level(1e9) == 3
    admitted = [bucket.take(1e9).allowed for _ in range(4)]
    assert admitted == [True, True, True, False]


def test_fractional_rate_counts_fractions_exactly() -> None:
    # 1000/min: a token every 60 ms; 12 tokens in 720 ms, not 11 or 13.
    bucket = TokenBucket(rate=1000 / 60, burst=1, now=0.0, tokens=0.0)
    admitted = sum(bucket.take(t * 0.001).allowed for t in range(1, 721))
    assert admitted == 12
    # 5/h: one token every 720 s.
    slow = TokenBucket(rate=5 / 3600, burst=5, now=0.0, tokens=0.0)
    assert not slow.take(719.9).allowed
    assert slow.take(720.0).allowed
    assert slow.take(720.0).retry_after_s == pytest.approx(720.0)


def test_clock_going_backwards_mints_nothing() -> None:
    bucket = TokenBucket(rate=10, burst=10, now=100.0, tokens=0.0)
    assert bucket.level(50.0) == 0.0
    refused = bucket.take(50.0)
    assert not refused.allowed
    # Refill starts again only once the clock is back at 100: the wait includes the gap.
    assert refused.retry_after_s == pytest.approx(50.1)
    assert bucket.updated_at == 100.0
    # The interval 50..100 is not credited twice: at 100.5 there are 5 tokens, not 10.
    assert bucket.level(100.5) == pytest.approx(5.0)


def test_clock_jumping_back_and_forth_never_beats_the_rate() -> None:
    rng = random.Random(7)
    bucket = TokenBucket(rate=20, burst=10, now=0.0)
    true_time, admitted = 0.0, 0
    for _ in range(20_000):
        true_time += rng.uniform(0, 0.002)
        skew = rng.choice([0.0, 0.0, -rng.uniform(0, 0.5)])  # sometimes the clock reads early
        admitted += bucket.take(true_time + skew).allowed
    assert admitted <= 10 + 20 * true_time


def test_take_all_is_all_or_nothing() -> None:
    user = TokenBucket(rate=1, burst=5, now=0.0)
    route = TokenBucket(rate=1, burst=1, now=0.0)
    ok, decisions = take_all([(user, 1), (route, 1)], 0.0)
    assert ok and [d.allowed for d in decisions] == [True, True]
    ok, decisions = take_all([(user, 1), (route, 1)], 0.0)
    assert not ok
    assert [d.allowed for d in decisions] == [True, False]
    assert user.tokens == 4  # the refused request left the user's tokens alone
    assert decisions[0].remaining == 4 and decisions[0].retry_after_s == 0.0
    assert decisions[1].retry_after_s == pytest.approx(1.0)


def test_cost_above_one_and_zero() -> None:
    bucket = TokenBucket(rate=1, burst=10, now=0.0)
    assert bucket.take(0.0, cost=7).remaining == 3
    refused = bucket.take(0.0, cost=4)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(1.0)
    peek = bucket.take(0.0, cost=0)
    assert peek.allowed and peek.remaining == 3


def test_retune_keeps_refilled_tokens_and_trims_to_new_burst() -> None:
    bucket = TokenBucket(rate=10, burst=10, now=0.0, tokens=0.0)
    bucket.retune(0.5, rate=1, burst=3)  # 5 refilled at the old rate, trimmed to 3
    assert bucket.level(0.5) == 3
    bucket.take(0.5, cost=3)
    assert bucket.level(1.5) == pytest.approx(1.0)


def test_helpers() -> None:
    assert refill(1.0, 10.0, 12.0, rate=0.5, burst=5) == 2.0
    assert refill(1.0, 10.0, 9.0, rate=0.5, burst=5) == 1.0
    assert refill(9.0, 10.0, 10.0, rate=0.5, burst=5) == 5.0
    assert seconds_until(1.0, 3.0, rate=2.0) == 1.0
    assert seconds_until(4.0, 3.0, rate=2.0) == 0.0


def test_rejects_nonpositive_rate_or_burst() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, now=0.0)


@pytest.mark.parametrize(
    ("allowed", "tokens", "cost", "rate", "burst", "wait_s"),
    [
        (True, 3.25, 1.0, 10.0, 5.0, 0.0),
        (False, 0.5, 1.0, 1.0, 1.0, 1.0),  # refill restarts in a second
        (True, -0.0, 1.0, 2.0, 4.0, -0.5),  # a negative wait counts as none
        (False, 0.0, 3.0, 1 / 3, 10.0, 0.0),
    ],
)
def test_levels_are_the_numbers_of_a_decision(
    allowed: bool, tokens: float, cost: float, rate: float, burst: float, wait_s: float
) -> None:
    d = decision(allowed=allowed, tokens=tokens, cost=cost, rate=rate, burst=burst, wait_s=wait_s)
    assert levels(allowed, tokens, cost, rate, burst, wait_s) == (
        d.remaining,
        d.reset_after_s,
        d.retry_after_s,
    )
