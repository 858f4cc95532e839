"""Right before the mirror and the proxy: answers a cached route's requests from the edge's
response cache, or sends them on and stores the answers (:mod:`edge.cache`)."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from edge.cache.policy import CachePolicy
from edge.cache.serving import EdgeCache
from mesh.chain import Handler
from mesh.exchange import Exchange


class CacheFilter:
    """A request of a route without ``cache`` costs an attribute test; one with it is
    the cache's (:meth:`edge.cache.serving.EdgeCache.serve`)."""

    def __init__(self, cache: EdgeCache) -> None:
        self._serve = cache.serve

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        # A plain def: a route without a cache hands back the next handler's awaitable.
        policy: CachePolicy | None = ex.attrs["route"].cache  # set by routing
        if policy is None:
            return next_handler(ex)
        return self._serve(ex, ex.route or "", policy, next_handler)
