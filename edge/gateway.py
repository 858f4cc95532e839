"""The edge's request pipeline, rebuilt whenever the snapshot changes or the config is reloaded.

Filter order (outermost first): metrics → features' ``before_routing`` filters
→ routing → features' ``after_routing`` filters → their ``before_proxy``
filters → proxy. Two filters next to each other in that order run as one
chain level when the first offers to (:func:`mesh.chain.fuse_adjacent`). The route table
(config routes plus routes declared in Consul meta) is compiled once per
snapshot; a request reads ``chain`` once, so it runs entirely against one
route table and one snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from edge.config import EdgeConfig, RouteConfig
from edge.direct.actions import DirectAction
from edge.direct.terminal import DirectTerminal
from edge.feature import EdgeFeature
from edge.filters.routing import RoutingFilter
from edge.meta_routes import MetaProblem, all_meta_routes
from edge.routes import Route, RouteTable, make_route
from mesh.chain import Filter, Handler, build_chain, fuse_adjacent
from mesh.config.reload import Reload
from mesh.filters.metrics import MetricsFilter
from mesh.hash_policy_config import hash_policy
from mesh.proxy import Proxy
from mesh.snapshot import Snapshot, SnapshotStore
from mesh.telemetry.metrics import ProxyMetrics

log = logging.getLogger(__name__)

# Route keys routing itself uses; everything else goes to the features as options.
_ROUTING_KEYS = {
    "prefix",
    "path",
    "service",
    "name",
    "host",
    "methods",
    "strip_prefix",
    "prefix_rewrite",
    "timeout",
    "max_body_size",
    "canary",
    "match",
    "mirror",
    "hash_policy",
    "retries",
    "cache",
    "ext_authz",
    "redirect",
    "direct_response",
}


def config_routes(config: EdgeConfig) -> list[Route]:
    return [
        make_route(
            prefix=r.matched,
            exact=r.path is not None,
            service=r.service,
            source="config",
            name=r.name,
            host=r.host,
            methods=r.methods,
            strip_prefix=r.strip_prefix,
            prefix_rewrite=r.prefix_rewrite,
            timeout=r.timeout,
            max_body_size=r.max_body_size,
            canary=r.canary.canary() if r.canary is not None else None,
            conditions=r.match.conditions() if r.match is not None else None,
            mirror=r.mirror.policy() if r.mirror is not None else None,
            options=r.model_dump(exclude=_ROUTING_KEYS, exclude_none=True),
            hash_policy=hash_policy(r.hash_policy),
            retries=r.retries.policy() if r.retries is not None else None,
            cache=r.cache.policy() if r.cache is not None else None,
            ext_authz=r.ext_authz.check() if r.ext_authz is not None else None,
            direct=direct_action(r),
        )
        for r in config.routes
    ]


def direct_action(route: RouteConfig) -> DirectAction | None:
    """The edge's own answer for a route's requests, or None for a proxied route."""
    if route.redirect is not None:
        return route.redirect.action()
    if route.direct_response is not None:
        return route.direct_response.action()
    return None


@dataclass(frozen=True)
class _RoutingSettings:
    """What routing takes from the config, replaced whole by a reload."""

    KEYS: ClassVar[tuple[str, ...]] = (
        "routes",
        "consul_routes",
        "proxy.response_timeout",
        "listen.max_body_size",
    )
    """The key paths these come from (applied live)."""

    routes: tuple[Route, ...]
    consul_routes: bool
    response_timeout: float
    max_body_size: int | None

    @classmethod
    def of(cls, config: EdgeConfig) -> _RoutingSettings:
        return cls(
            tuple(config_routes(config)),
            config.consul_routes,
            config.proxy.response_timeout,
            config.listen.max_body_size,
        )


class EdgeGateway:
    def __init__(
        self,
        config: EdgeConfig,
        store: SnapshotStore,
        proxy: Proxy,
        metrics: ProxyMetrics,
        features: Sequence[EdgeFeature] = (),
    ) -> None:
        self._features = tuple(features)
        self._store = store
        self._proxy = proxy
        self._metrics_filter = MetricsFilter(metrics)
        self._count_canary = metrics.count_canary
        self._routing = _RoutingSettings.of(config)
        self._stages = self._collect_filters()
        self.table = RouteTable(self._routing.routes)
        self.meta_problems: list[MetaProblem] = []
        self.handler: Handler = self._build(self.table)
        store.subscribe(self._on_snapshot)

    def chain(self) -> Handler:
        return self.handler

    def prepare_reload(self, config: EdgeConfig) -> Reload:
        """The config's routes and routing settings; the commit rebuilds the pipeline with
        them and with the features' filters as they are then (commit the features first)."""
        routing = _RoutingSettings.of(config)

        def commit() -> None:
            self._routing = routing
            self._stages = self._collect_filters()
            self._on_snapshot(self._store.current)

        return Reload(_RoutingSettings.KEYS, commit)

    def _collect_filters(self) -> tuple[list[Filter], list[Filter]]:
        """The features' filters before routing, and after it (then before the proxy)."""
        features = self._features
        before = [f for feature in features for f in feature.before_routing()]
        after = [f for feature in features for f in feature.after_routing()]
        return before, after + [f for feature in features for f in feature.before_proxy()]

    def _build(self, table: RouteTable) -> Handler:
        before, after = self._stages
        filters: list[Filter] = [
            self._metrics_filter,
            *before,
            RoutingFilter(
                table,
                self._routing.response_timeout,
                self._routing.max_body_size,
                on_canary=self._count_canary,
            ),
            *after,
        ]
        # Only a table with routes the edge answers itself pays for the test of each request.
        terminal = DirectTerminal(self._proxy) if table.answers_directly else self._proxy
        return build_chain(fuse_adjacent(filters), terminal)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        routes = list(self._routing.routes)
        problems: list[MetaProblem] = []
        if self._routing.consul_routes:
            meta_routes, problems = all_meta_routes(snapshot.services.values())
            routes += meta_routes
        for p in problems:
            if p not in self.meta_problems:
                log.warning("service %s: meta %s: %s", p.service, p.key, p.problem)
        table = RouteTable(routes)
        for c in table.conflicts:
            log.debug("route conflict: %s", c)
        self.meta_problems = problems
        self.table = table
        self.handler = self._build(table)

    def routes_view(self) -> dict[str, Any]:
        snapshot = self._store.current
        instances = {
            name: [
                {
                    "id": i.id,
                    "address": i.authority,
                    "healthy": i.healthy,
                    "weight": i.weight,
                    "zone": i.zone,
                    "region": i.region,
                }
                for i in entry.instances
            ]
            for name, entry in snapshot.services.items()
        }
        view = self.table.describe(instances)
        view["meta_problems"] = [p.__dict__ for p in self.meta_problems]
        view["catalog"] = {"source": snapshot.source, "age_seconds": self._store.age()}
        return view
