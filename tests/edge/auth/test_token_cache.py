"""TokenCache: bounded LRU with per-entry deadlines on an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from edge.auth.token_cache import TokenCache, token_digest


def test_digest_is_sha256_of_the_token() -> None:
    digest = token_digest("abc")
    assert len(digest) == 32
    assert digest != token_digest("abd")


def test_entries_live_until_their_deadline(clock: Any) -> None:
    cache: TokenCache[str] = TokenCache(10, clock)
    cache.put(b"k", "v", clock() + 10)
    clock.advance(9.99)
    assert cache.get(b"k") == "v"
    clock.advance(0.01)
    assert cache.get(b"k") is None
    assert len(cache) == 0


def test_a_deadline_already_past_is_not_stored(clock: Any) -> None:
    cache: TokenCache[str] = TokenCache(10, clock)
    cache.put(b"k", "v", clock())
    assert len(cache) == 0


def test_least_recently_used_is_evicted(clock: Any) -> None:
    cache: TokenCache[int] = TokenCache(2, clock)
    cache.put(b"a", 1, clock() + 60)
    cache.put(b"b", 2, clock() + 60)
    assert cache.get(b"a") == 1
    cache.put(b"c", 3, clock() + 60)
    assert cache.get(b"b") is None
    assert (cache.get(b"a"), cache.get(b"c")) == (1, 3)
    cache.discard(b"a")
    assert cache.get(b"a") is None
    cache.clear()
    assert len(cache) == 0


def test_size_must_be_positive(clock: Any) -> None:
    with pytest.raises(ValueError):
        TokenCache(0, clock)


def test_keys_may_be_token_text_and_get_counts_live_answers(clock: Any) -> None:
    cache: TokenCache[str] = TokenCache(10, clock)
    cache.put("a.b.c", "v", clock() + 10)
    assert cache.get("a.b.c") == "v"
    assert cache.get("a.b.C") is None and cache.get(b"a.b.c") is None
    assert cache.hits == 1
    clock.advance(10)
    assert cache.get("a.b.c") is None
    assert cache.hits == 1


def test_get_keeps_recency_drops_expired_entries_and_counts_hits(clock: Any) -> None:
    cache: TokenCache[int] = TokenCache(2, clock)
    cache.put(b"a", 1, clock() + 60)
    cache.put(b"b", 2, clock() + 5)
    assert cache.get(b"a") == 1  # now the most recently used
    cache.put(b"c", 3, clock() + 60)
    assert cache.get(b"b") is None and cache.get(b"a") == 1
    clock.advance(60)
    assert cache.get(b"a") is None
    assert len(cache) == 1  # the expired entry was dropped
    assert cache.hits == 2


def test_get_stays_bound_to_the_live_entries_across_clear(clock: Any) -> None:
    cache: TokenCache[int] = TokenCache(2, clock)
    get = cache.get
    cache.put(b"a", 1, clock() + 60)
    cache.clear()
    assert get(b"a") is None
    cache.put(b"a", 2, clock() + 60)
    assert get(b"a") == 2 and cache.hits == 1
