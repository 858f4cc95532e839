"""The cache feature of the edge: the filter (:mod:`edge.filters.cache`) right before the
mirror's and the proxy, the store of this process, its metrics and admin endpoints.

Always built, so that a reload may add a ``cache`` to a route; with no route cached
it contributes no filter. A reload applies the ``cache`` section (the store's bounds:
entries are evicted at once to fit smaller ones) and follows the routes (the
gateway's key): a route whose ``cache`` changed or went loses its entries, so that
nothing stored under the old settings is served under the new ones.

With ``cache.shared_purges`` each worker also reads the purge stream, and a purge
made here for every worker is appended to it (:mod:`edge.cache.shared_purges`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from edge.cache.admin import CacheAdmin, purged_total
from edge.cache.metrics import CacheMetrics
from edge.cache.policy import CachePolicy
from edge.cache.serving import EdgeCache
from edge.cache.shared_purges import (
    SharedPurgeMetrics,
    SharedPurges,
    node_id,
    redis_client,
    sharing,
)
from edge.cache.store import CacheStore
from edge.config import EdgeConfig
from edge.feature import BaseFeature, EdgeContext
from edge.filters.cache import CacheFilter
from edge.gateway import config_routes
from mesh.admin import AdminHandler
from mesh.chain import Filter
from mesh.config.reload import Reload


def _policies(config: EdgeConfig) -> dict[str, CachePolicy]:
    return {route.name: route.cache for route in config_routes(config) if route.cache is not None}


class CacheFeature(BaseFeature):
    name = "cache"

    def __init__(
        self, config: EdgeConfig, ctx: EdgeContext, clock: Callable[[], float] = time.time
    ) -> None:
        metrics = CacheMetrics(ctx.registry)
        bounds = config.cache
        store = CacheStore(bounds.max_bytes, bounds.max_entries, metrics)
        self.cache = EdgeCache(store, metrics, clock)
        self._admin = CacheAdmin(self.cache)
        # A purge is for every worker's store (each edge worker has its own).
        self._purge: AdminHandler = ctx.workers.across(
            self._admin.handle_purge, every_worker=True, summary=purged_total
        )
        self.shared: SharedPurges | None = None
        shared = bounds.shared_purges
        if shared is not None:
            self.shared = SharedPurges(
                redis_client(shared.url, shared.timeout),
                shared.stream,
                shared.max_length,
                shared.timeout,
                node_id(ctx.workers.several),
                self._admin.apply,
                SharedPurgeMetrics(ctx.registry),
            )
            self._purge = sharing(self._purge, self.shared, ctx.workers.several)
            self._admin.shared_view = self.shared.view
        self._policies = _policies(config)
        self._filters = self._filters_for(self._policies)

    def _filters_for(self, policies: Mapping[str, CachePolicy]) -> list[Filter]:
        return [CacheFilter(self.cache)] if policies else []

    def before_proxy(self) -> list[Filter]:
        return self._filters

    def admin_endpoints(self) -> Mapping[tuple[str, str], AdminHandler]:
        return {
            ("GET", "/cache"): self._admin.handle_view,
            ("POST", "/cache/purge"): self._purge,
        }

    def prepare_reload(self, config: EdgeConfig) -> Reload:
        policies = _policies(config)
        filters = self._filters_for(policies)
        bounds = config.cache
        changed = [name for name, policy in self._policies.items() if policies.get(name) != policy]

        def commit() -> None:
            store = self.cache.store
            for name in changed:
                store.purge(route=name)
            store.resize(bounds.max_bytes, bounds.max_entries)
            self._policies = policies
            self._filters = filters

        # The store's bounds; shared_purges waits for a restart.
        return Reload(("cache.max_bytes", "cache.max_entries"), commit)

    async def start(self) -> None:
        if self.shared is not None:
            self.shared.start()

    async def stop(self) -> None:
        if self.shared is not None:
            await self.shared.stop()
        await self.cache.stop()
