"""Right before the mirror and the proxy: answers a cached route's requests from the edge's
response cache, or sends them on and stores the answers (:mod:`edge.cache`)."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from edge.cache.policy import CachePolicy
from edge.cache.serving import SAFE_METHODS, EdgeCache
from mesh.chain import Handler
from mesh.exchange import Exchange


class CacheFilter:
    """A request of a route with a ``cache`` is the cache's
    (:meth:`edge.cache.serving.EdgeCache.serve`). One of a route without costs an
    attribute test and a method test; if its method is unsafe, its answer still
    invalidates the entries of its URI (:meth:`edge.cache.serving.EdgeCache.invalidating`)."""

    def __init__(self, cache: EdgeCache) -> None:
        self._serve = cache.serve
        self._invalidating = cache.invalidating

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        # A plain def: a route without a cache hands back the next handler's awaitable.
        policy: CachePolicy | None = ex.attrs["route"].cache  # set by routing
        if policy is None:
            if ex.request.method in SAFE_METHODS:
                return next_handler(ex)
            return self._invalidating(ex, next_handler)
        return self._serve(ex, ex.route or "", policy, next_handler)
