"""Serving's pure steps: what a revalidation (304) keeps of an entry's tags."""

from __future__ import annotations

from multidict import CIMultiDict
from prometheus_client import CollectorRegistry

from edge.cache.freshness import Timing
from edge.cache.metrics import CacheMetrics
from edge.cache.policy import CachePolicy
from edge.cache.serving import EdgeCache
from edge.cache.store import CacheStore, Entry
from tests.edge.cache.entries import make_entry

NOW = 1_000_000.0


def cache_with(tags: tuple[str, ...]) -> tuple[EdgeCache, Entry]:
    cache = EdgeCache(CacheStore(10**9, 100), CacheMetrics(CollectorRegistry()), lambda: NOW)
    stale = make_entry(
        headers={"Cache-Control": "max-age=1", "ETag": '"v"'},
        body=b"body",
        timing=Timing(lifetime=1, initial_age=0, received=NOW - 10),
        tags=tags,
    )
    assert cache.store.put(stale)
    return cache, stale


def refresh(cache: EdgeCache, stale: Entry, headers: dict[str, str]) -> Entry:
    return cache.refreshed(stale, CIMultiDict(headers), CachePolicy(), False, NOW, NOW)


def test_a_304_naming_no_tags_keeps_the_entrys() -> None:
    cache, stale = cache_with(("user-7",))
    fresh = refresh(cache, stale, {"Cache-Control": "max-age=60", "ETag": '"v"'})
    assert fresh.tags == ("user-7",) and list(cache.store) == [fresh]
    assert cache.store.purge(tags=["user-7"]) == 1


def test_a_304_naming_tags_replaces_them_and_they_are_not_stored_as_a_header() -> None:
    cache, stale = cache_with(("user-7",))
    fresh = refresh(cache, stale, {"Cache-Control": "max-age=60", "Surrogate-Key": "user-8"})
    assert fresh.tags == ("user-8",) and "Surrogate-Key" not in fresh.headers
    assert cache.store.purge(tags=["user-7"]) == 0
    assert cache.store.purge(tags=["user-8"]) == 1
