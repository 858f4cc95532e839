"""The cache in ``/metrics``: what it did with each request, and the store's totals."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from mesh.telemetry.metrics import ChildFunctions, adder

Result = Literal[
    "hit", "collapsed", "stale", "stale_if_error", "revalidated", "miss", "uncacheable", "bypass"
]
"""What the cache did with a request of a cached route:

* ``hit``: served a fresh stored answer (a 304 to a client's conditional request too);
* ``collapsed``: waited for another request's fetch of the same resource, then served
  what it stored;
* ``stale``: served a stale answer while revalidating it in the background
  (``stale-while-revalidate``);
* ``stale_if_error``: served a stale answer because the service failed;
* ``revalidated``: a stale answer the service confirmed (304), then served;
* ``miss``: sent on, nothing usable stored; the answer is being stored (or failed);
* ``uncacheable``: sent on, and the answer may not be stored (see ``Cache-Status``'s
  ``detail``);
* ``bypass``: not a request the cache answers (a method other than GET or HEAD, a
  precondition, a body, a WebSocket handshake, a range no fresh entry holds)."""


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "meshgate_cache_requests",
            "Requests of cached routes, by route and what the cache did (hit, collapsed, "
            "stale, stale_if_error, revalidated, miss, uncacheable, bypass).",
            ["route", "result"],
            registry=registry,
        )
        self.bytes = Gauge(
            "meshgate_cache_bytes",
            "Bytes of stored responses (bodies, headers, bookkeeping), all edge processes.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.entries = Gauge(
            "meshgate_cache_entries",
            "Stored responses, all edge processes.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.evictions = Counter(
            "meshgate_cache_evictions",
            "Stored responses evicted, least recently used first, to stay within "
            "cache.max_bytes and cache.max_entries.",
            registry=registry,
        )
        # Every request of a cached route counts once: its increment looked up once per
        # (route, result), not through labels() (a lock and the labels' checks) each time.
        self._counted = ChildFunctions(self.requests, adder)

    def count(self, route: str, result: Result) -> None:
        self._counted(route, result)()

    # -- the store's observer (edge.cache.store.StoreObserver) ---------------------

    def changed(self, size: int, entries: int) -> None:
        self.bytes.set(size)
        self.entries.set(entries)

    def evicted(self, count: int) -> None:
        self.evictions.inc(count)
