"""In-process token buckets: the fallback while Redis is unusable, and a limiter on its own.

Each edge enforces 1/N of every limit, N being the number of healthy edge
instances (the edge reads it from Consul), so that N edges together admit
roughly what Redis would have. Buckets are created full on first use and
forgotten once full again, so memory follows the number of recently active keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from edge.ratelimit.bucket import TokenBucket, levels, take_all
from edge.ratelimit.limiter import LimitOutcome, LimitRequest, LimitResult, ensure_distinct


def _one_instance() -> int:
    return 1


class LocalLimiter:
    """A :class:`~edge.ratelimit.limiter.Limiter` holding its buckets in this process.

    ``instances`` returns how many edges share each limit (values below 1 count
    as 1); it is called on every check, so it must be cheap. Each bucket
    refills at ``rate / N`` and holds ``max(burst / N, cost)`` tokens. ``clock``
    is any monotonic clock in seconds. One event loop owns an instance.
    """

    def __init__(
        self,
        *,
        instances: Callable[[], int] = _one_instance,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval_s: float = 30.0,
    ) -> None:
        self._instances = instances
        self._clock = clock
        self._sweep_interval_s = sweep_interval_s
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._next_sweep = clock() + sweep_interval_s

    def __len__(self) -> int:
        """Number of buckets currently held (full buckets are dropped by the periodic sweep)."""
        return len(self._buckets)

    async def check(self, limits: Sequence[LimitRequest]) -> LimitResult:
        """See :meth:`decide`; never suspends."""
        return self.decide(limits)

    def decide(self, limits: Sequence[LimitRequest], *, degraded: bool = False) -> LimitResult:
        """Take every limit's cost from its local bucket, or none; ``source`` is "local".

        ``degraded`` is copied into the result (the Redis limiter sets it when
        this answers in Redis's place).
        """
        if len(limits) != 1:
            ensure_distinct(limits)
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        share = self._instances()
        share = share if share > 1 else 1  # not max(): every check while Redis is down
        if len(limits) == 1:
            return self._decide_one(limits[0], now, share, degraded)
        items = []
        for limit in limits:
            items.append((self._bucket(limit, now, share), float(limit.cost)))
        admitted, decisions = take_all(items, now)
        outcomes = tuple(
            LimitOutcome(limit, d.allowed, d.remaining, d.reset_after_s, d.retry_after_s)
            for limit, d in zip(limits, decisions, strict=True)
        )
        retry = 0.0 if admitted else max(d.retry_after_s for d in decisions)
        return LimitResult(
            allowed=admitted,
            source="local",
            degraded=degraded,
            requests=tuple(limits),
            outcomes=outcomes,
            retry_after_s=retry,
        )

    def _decide_one(
        self, limit: LimitRequest, now: float, share: int, degraded: bool
    ) -> LimitResult:
        """:meth:`decide` for one limit (the common case), without take_all's lists."""
        bucket = self._bucket(limit, now, share)
        cost = float(limit.cost)
        # TokenBucket.advance and decision() written out (same arithmetic): this is
        # every request's path while Redis is down.
        rate, burst, tokens = bucket.rate, bucket.burst, bucket.tokens
        if now > bucket.updated_at:
            tokens += (now - bucket.updated_at) * rate
            bucket.updated_at = now
        tokens = min(burst, tokens)
        allowed = tokens >= cost
        if allowed:
            tokens = min(burst, tokens - cost)
        bucket.tokens = tokens
        remaining, reset_s, retry_s = levels(
            allowed, tokens, cost, rate, burst, bucket.updated_at - now
        )
        return LimitResult(
            allowed=allowed,
            source="local",
            degraded=degraded,
            requests=(limit,),
            outcomes=(LimitOutcome(limit, allowed, remaining, reset_s, retry_s),),
            retry_after_s=0.0 if allowed else retry_s,
        )

    def _bucket(self, limit: LimitRequest, now: float, share: int) -> TokenBucket:
        """The local bucket of ``limit``, created full or retuned to this edge's share."""
        rate = limit.policy.rate.per_second / share
        burst = limit.policy.rate.burst / share
        cost = float(limit.cost)
        burst = burst if burst >= cost else cost  # max(), without its argument parsing
        key = (limit.policy.name, limit.key)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        elif bucket.rate != rate or bucket.burst != burst:
            bucket.retune(now, rate, burst)
        return bucket

    def _sweep(self, now: float) -> None:
        # A full bucket is indistinguishable from a missing one: drop it.
        full = [k for k, b in self._buckets.items() if b.level(now) >= b.burst]
        for key in full:
            del self._buckets[key]
        self._next_sweep = now + self._sweep_interval_s
