"""API key verification at the edge: a short-lived cache in front of the Redis store.

Look-ups are cached by SHA-256 of the key, found or not, for ``cache_ttl_s``;
that is the documented bound on how long a revoked key keeps working at an
edge. Concurrent requests with the same uncached key share one look-up.
A store that cannot answer gives :class:`ApiKeysUnavailable` (answer 503):
never "unknown key", which would be cached and refuse a valid caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge.auth.apikeys import ApiKeyRecord, key_id_of
from edge.auth.errors import AuthError
from edge.auth.token_cache import TokenCache, token_digest

ApiKeyLookup = Callable[[str], Awaitable[ApiKeyRecord | None]]
"""The store's look-up: the record of a live key, None otherwise; raises when it cannot tell."""

MAX_KEY_CHARS = 256


class ApiKeysUnavailable(Exception):
    """The key store gave no answer (Redis down or slow); the filter answers 503."""


@dataclass(frozen=True, slots=True)
class _Unknown:
    pass


_UNKNOWN = _Unknown()


@dataclass(frozen=True, slots=True)
class ApiKeyStats:
    """Counters for the admin view: store look-ups, failed ones, cache hits."""

    lookups: int
    failures: int
    cache_hits: int
    cached_entries: int


class ApiKeyVerifier:
    """Turns a presented API key into its record, or refuses it."""

    def __init__(
        self,
        lookup: ApiKeyLookup,
        clock: Callable[[], float],
        *,
        cache_ttl_s: float = 5.0,
        max_entries: int = 10_000,
        timeout_s: float = 1.0,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self._ttl = cache_ttl_s
        self._timeout = timeout_s
        self._cache: TokenCache[ApiKeyRecord | _Unknown] = TokenCache(max_entries, clock)
        self._lookups = 0
        self._failures = 0

    async def verify(self, key: str) -> ApiKeyRecord:
        """The record of a live key.

        Raises AuthError ``invalid_token``: ``malformed api key`` (not the
        ``mgk_`` shape; no look-up is made) or ``unknown api key`` (never
        issued, or revoked). Raises ApiKeysUnavailable when the store failed.
        """
        if len(key) > MAX_KEY_CHARS or key_id_of(key) is None:
            raise AuthError.invalid_token("malformed api key")
        answer = await self._cache.lookup(token_digest(key), lambda: self._ask(key))
        if isinstance(answer, _Unknown):
            raise AuthError.invalid_token("unknown api key")
        return answer

    def cached(self, key: str) -> ApiKeyRecord | None:
        """What :meth:`verify` would answer from its cache alone; never awaits.

        The record of a key cached as live; raises AuthError ``unknown api
        key`` for one cached as unknown; None when nothing is cached for it
        (never looked up, or its answer expired): ask :meth:`verify`, which
        decides (malformed keys included). A cached answer counts as a hit.
        Guarantee: every key this answers for passed the ``mgk_`` shape check
        (no space or tab, at most MAX_KEY_CHARS).
        """
        if len(key) > MAX_KEY_CHARS:
            return None  # never cached, and not worth hashing
        answer = self._cache.get(token_digest(key))
        if isinstance(answer, _Unknown):
            raise AuthError.invalid_token("unknown api key")
        return answer

    def stats(self) -> ApiKeyStats:
        return ApiKeyStats(self._lookups, self._failures, self._cache.hits, len(self._cache))

    async def _ask(self, key: str) -> tuple[ApiKeyRecord | _Unknown, float]:
        self._lookups += 1
        try:
            async with asyncio.timeout(self._timeout):
                record = await self._lookup(key)
        except Exception as exc:
            self._failures += 1
            raise ApiKeysUnavailable(f"api key store failed: {type(exc).__name__}") from exc
        answer: ApiKeyRecord | _Unknown = record if record is not None else _UNKNOWN
        return answer, self._clock() + self._ttl
