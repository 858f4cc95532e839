"""Buckets known to be empty, so that their refusals need no Redis round trip.

After Redis reports a bucket with less than one token, the bucket cannot admit
anything until refill brings it back, whatever the other edges do: they can
only take tokens, never add them. Until that time the edge refuses locally.

The level is projected from the moment the request was *sent* to Redis, which
is no later than the moment Redis computed it. The projection therefore never
falls below the true level: the cache may let a request go to Redis that Redis
then refuses, but never refuses one that Redis would have admitted. That is
what keeps limits exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.ratelimit.bucket import Decision, decision, refill


@dataclass(slots=True)
class _Empty:
    tokens: float  # level Redis reported (< 1)
    at: float  # local clock time from which that level refills
    rate: float  # refill rate at the time, for sweeping


class KnownEmptyCache:
    """Bucket → "held ``tokens`` at local time ``at``", for buckets with less than 1 token.

    A bucket is named by its Redis key, in any one form (the Redis limiter uses
    the key as it sends it, a RESP bulk string).

    Bounded to ``capacity`` entries: when full, entries that have refilled are
    dropped, then the oldest. Times are on the caller's monotonic clock.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        self._capacity = capacity
        self.entries: dict[str | bytes, _Empty] = {}
        """The entries by key. Read it (``if cache.entries``, a membership test) on hot
        paths, where even ``len(cache)`` is a method call; change it only through methods."""

    def __len__(self) -> int:
        return len(self.entries)

    def remember(self, key: str | bytes, tokens: float, at: float, rate: float) -> None:
        """Record that ``key`` held ``tokens`` at ``at``; levels of 1 or more are not kept."""
        if tokens >= 1.0:
            self.entries.pop(key, None)
            return
        if key not in self.entries and len(self.entries) >= self._capacity:
            self._make_room(at)
        self.entries[key] = _Empty(tokens, at, rate)

    def refusal(
        self, key: str | bytes, now: float, cost: float, rate: float, burst: float
    ) -> Decision | None:
        """A refusing Decision if ``key`` surely lacks ``cost`` tokens at ``now``, else None.

        None means "unknown, ask Redis". An entry that has refilled past one
        token is forgotten.
        """
        entry = self.entries.get(key)
        if entry is None:
            return None
        tokens = refill(entry.tokens, entry.at, now, rate, burst)
        if tokens >= 1.0:
            del self.entries[key]
        if tokens >= cost:
            return None
        return decision(
            allowed=False, tokens=tokens, cost=cost, rate=rate, burst=burst, wait_s=entry.at - now
        )

    def forget(self, key: str | bytes) -> None:
        """Drop what is known about ``key`` (its tokens were given back)."""
        self.entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything (after a Redis outage the stored state may be gone)."""
        self.entries.clear()

    def _make_room(self, now: float) -> None:
        refilled = [
            k for k, e in self.entries.items() if refill(e.tokens, e.at, now, e.rate, 1.0) >= 1.0
        ]
        for key in refilled:
            del self.entries[key]
        # Still full: drop the oldest tenth; forgetting only costs a Redis round trip.
        if len(self.entries) >= self._capacity:
            for key in list(self.entries)[: max(1, self._capacity // 10)]:
                del self.entries[key]
