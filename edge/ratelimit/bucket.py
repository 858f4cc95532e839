"""Token-bucket arithmetic, without I/O: the same math ``token_bucket.lua`` runs in Redis.

A bucket holds up to ``burst`` tokens and refills continuously at ``rate``
tokens per second. A request of ``cost`` tokens is admitted when the bucket
holds at least ``cost`` tokens, which are then removed. The state is two
numbers, the token level and the time it was computed at; a missing state is a
full bucket, which is why Redis keys may expire once the bucket is full again.

Time is always passed in (``now``, seconds on any clock that the caller uses
consistently), so the arithmetic is tested with a fake clock. When ``now`` is
earlier than the stored time the clock went backwards: nothing is refilled and
the later time is kept, so that the interval is not credited twice once the
clock catches up. No tokens are ever minted by a clock step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def refill(tokens: float, updated_at: float, now: float, rate: float, burst: float) -> float:
    """Token level at ``now`` of a bucket that held ``tokens`` at ``updated_at``.

    Never above ``burst`` (which also trims a level saved under a larger burst),
    and unchanged when ``now <= updated_at`` (the clock went backwards).
    """
    if now > updated_at:
        tokens += (now - updated_at) * rate
    return min(burst, tokens)


def seconds_until(tokens: float, target: float, rate: float) -> float:
    """Seconds of refill (at ``rate``) for a level of ``tokens`` to reach ``target``; 0 if there."""
    return (target - tokens) / rate if tokens < target else 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """One bucket's answer to one request.

    ``allowed``: the bucket held at least ``cost`` tokens. ``tokens``: the exact
    level after the decision (reduced by ``cost`` only if the request was
    admitted). ``remaining``: ``tokens`` rounded down, what RateLimit-Remaining
    shows. ``reset_after_s``: seconds until the bucket is full again.
    ``retry_after_s``: 0 when ``allowed``, else seconds until ``cost`` tokens
    will be there if nobody else takes any.
    """

    allowed: bool
    tokens: float
    remaining: int
    reset_after_s: float
    retry_after_s: float


def decision(
    *, allowed: bool, tokens: float, cost: float, rate: float, burst: float, wait_s: float = 0.0
) -> Decision:
    """Build the :class:`Decision` for a bucket left at ``tokens``.

    ``wait_s`` is time before refill restarts (a clock that went backwards: the
    stored time is still ahead of ``now``); it delays both reset and retry.
    """
    remaining, reset_after_s, retry_after_s = levels(allowed, tokens, cost, rate, burst, wait_s)
    return Decision(allowed, tokens, remaining, reset_after_s, retry_after_s)


def levels(
    allowed: bool, tokens: float, cost: float, rate: float, burst: float, wait_s: float
) -> tuple[int, float, float]:
    """``(remaining, reset_after_s, retry_after_s)`` of :func:`decision`, without the object.

    The one place these numbers are computed: :func:`decision` is built on it,
    and the Redis limiter calls it directly for each bucket of a script reply,
    where a :class:`Decision` per bucket would only be copied and dropped.
    """
    # seconds_until written out, and conditionals for max(): this runs for every
    # bucket of every check, and max() parses its arguments like keywords.
    wait_s = wait_s if wait_s > 0.0 else 0.0
    whole = math.floor(tokens)
    return (
        whole if whole > 0 else 0,
        wait_s + ((burst - tokens) / rate if tokens < burst else 0.0),
        0.0 if allowed else wait_s + ((cost - tokens) / rate if tokens < cost else 0.0),
    )


class TokenBucket:
    """A mutable bucket for in-process limiting. Not thread-safe; one event loop owns it.

    The rate and burst may change between calls (:meth:`retune`), which is how
    the local fallback follows the number of healthy edge instances.
    """

    __slots__ = ("burst", "rate", "tokens", "updated_at")

    def __init__(self, rate: float, burst: float, now: float, tokens: float | None = None) -> None:
        """A bucket refilling at ``rate``/s up to ``burst``, holding ``tokens`` (default full)."""
        if not rate > 0 or not burst > 0:
            raise ValueError(f"rate and burst must be positive, got {rate!r} and {burst!r}")
        self.rate = rate
        self.burst = burst
        self.tokens = burst if tokens is None else min(burst, tokens)
        self.updated_at = now

    def level(self, now: float) -> float:
        """Tokens available at ``now``, without changing the bucket."""
        return refill(self.tokens, self.updated_at, now, self.rate, self.burst)

    def advance(self, now: float) -> None:
        """Bring the stored level up to ``now``; keeps the later time if the clock went back."""
        self.tokens = self.level(now)
        self.updated_at = max(self.updated_at, now)

    def retune(self, now: float, rate: float, burst: float) -> None:
        """Switch to a new rate and burst from ``now`` on; tokens refilled so far are kept."""
        if not rate > 0 or not burst > 0:
            raise ValueError(f"rate and burst must be positive, got {rate!r} and {burst!r}")
        self.advance(now)
        self.rate = rate
        self.burst = burst
        self.tokens = min(burst, self.tokens)

    def take(self, now: float, cost: float = 1.0) -> Decision:
        """Remove ``cost`` tokens if there are that many at ``now``; say what happened."""
        _, (result,) = take_all([(self, cost)], now)
        return result


def take_all(items: Sequence[tuple[TokenBucket, float]], now: float) -> tuple[bool, list[Decision]]:
    """Take each item's cost from its bucket, from all of them or from none.

    Returns whether the request was admitted and one Decision per item, in
    order. Each Decision's ``allowed`` says whether that bucket alone had room:
    a request refused by one bucket leaves every bucket's tokens as they were.
    """
    for bucket, _ in items:
        bucket.advance(now)
    admitted = all(bucket.tokens >= cost for bucket, cost in items)
    decisions = []
    for bucket, cost in items:
        had_room = bucket.tokens >= cost
        if admitted:
            bucket.tokens = min(bucket.burst, bucket.tokens - cost)
        decisions.append(
            decision(
                allowed=had_room,
                tokens=bucket.tokens,
                cost=cost,
                rate=bucket.rate,
                burst=bucket.burst,
                wait_s=bucket.updated_at - now,
            )
        )
    return admitted, decisions
