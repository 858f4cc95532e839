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

_MAX_BY_ID = 65536
"""Most requests the limiter finds buckets for by identity (see ``LocalLimiter._by_id``)."""


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
        # id(LimitRequest) -> (that request, its bucket as tuned for _share): policies hand
        # out the same LimitRequest for the same bucket, so a busy bucket is one look-up,
        # without a (name, key) tuple to build and hash. The entry holds its request, so
        # that no other object can take its id while it is kept. Cleared whenever the
        # share changes or the sweep drops buckets, so it never names a dropped bucket.
        # The entry also holds the rate and burst the request's bucket must have (its
        # burst depends on the request's cost), for the rare bucket drawn by two costs.
        self._by_id: dict[int, tuple[LimitRequest, TokenBucket, float, float]] = {}
        self._share = 1
        self._next_sweep = clock() + sweep_interval_s

    def __len__(self) -> int:
        """Number of buckets currently held (full buckets are dropped by the periodic sweep)."""
        return len(self._buckets)

    async def check(self, limits: Sequence[LimitRequest]) -> LimitResult:
        """See :meth:`decide`; never suspends."""
        return self.decide(limits)

    def check_nowait(self, limits: Sequence[LimitRequest]) -> LimitResult:
        """See :meth:`decide`: the result, always at once."""
        return self.decide(limits)

    def decide(self, limits: Sequence[LimitRequest], *, degraded: bool = False) -> LimitResult:
        """Take every limit's cost from its local bucket, or none; ``source`` is "local".

        ``degraded`` is copied into the result (the Redis limiter sets it when
        this answers in Redis's place).
        """
        if len(limits) == 1:
            return self.decide_one(limits[0], degraded)
        ensure_distinct(limits)
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        share = self._current_share()
        items = []
        for limit in limits:
            items.append((self._bucket(limit, now, share), float(limit.cost)))
        admitted, decisions = take_all(items, now)
        outcomes = tuple(
            LimitOutcome(limit, d.allowed, d.remaining, d.reset_after_s, d.retry_after_s)
            for limit, d in zip(limits, decisions, strict=True)
        )
        retry = 0.0 if admitted else max(d.retry_after_s for d in decisions)
        return LimitResult(admitted, "local", degraded, tuple(limits), outcomes, retry)

    def decide_one(self, limit: LimitRequest, degraded: bool = False) -> LimitResult:
        """:meth:`decide` for one limit (the common case), without take_all's lists.

        Every request takes this path while Redis is down, so the bucket is
        found by the request's identity and TokenBucket.advance and decision()
        are written out (the same arithmetic).
        """
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        share = self._instances()
        if share != self._share:
            share = self._current_share()
        entry = self._by_id.get(id(limit))
        if entry is None:
            bucket = self._bucket(limit, now, share)
            if len(self._by_id) >= _MAX_BY_ID:
                self._by_id.clear()  # past the working set: start over
            self._by_id[id(limit)] = (limit, bucket, bucket.rate, bucket.burst)
        else:
            _, bucket, rate, burst = entry
            if bucket.rate != rate or bucket.burst != burst:
                bucket.retune(now, rate, burst)  # another cost of the same bucket retuned it
        cost = float(limit.cost)
        rate, burst, tokens = bucket.rate, bucket.burst, bucket.tokens
        if now > bucket.updated_at:
            tokens += (now - bucket.updated_at) * rate
            bucket.updated_at = now
        if tokens > burst:  # min(), without its argument parsing
            tokens = burst
        allowed = tokens >= cost
        if allowed:
            tokens -= cost  # at most burst still: cost >= 0
        bucket.tokens = tokens
        remaining, reset_s, retry_s = levels(
            allowed, tokens, cost, rate, burst, bucket.updated_at - now
        )
        return LimitResult(
            allowed,
            "local",
            degraded,
            (limit,),
            (LimitOutcome(limit, allowed, remaining, reset_s, retry_s),),
            0.0 if allowed else retry_s,
        )

    def _current_share(self) -> int:
        """The number of edges sharing each limit now (at least 1); retunes on a change."""
        share = self._instances()
        share = share if share > 1 else 1
        if share != self._share:
            # Buckets are retuned by _bucket as they are next used; the identity cache
            # must not hand out one tuned for the old share meanwhile.
            self._share = share
            self._by_id.clear()
        return share

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
        if full:
            self._by_id.clear()  # it may name a dropped bucket
        self._next_sweep = now + self._sweep_interval_s
