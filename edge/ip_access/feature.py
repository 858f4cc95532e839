"""The IP access feature of the edge: the ``ip_access`` section's filter before routing,
routes' own ``ip_access`` after it, and ``meshgate_address_refusals_total{scope}``.

Always built, so that a reload may add a list to a route (a route's list that a
running edge ignored would let in the addresses it names for refusal); with no list
anywhere it contributes no filter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from edge.config import EdgeConfig
from edge.feature import ConfiguredFilters
from edge.filters.ip_access import EdgeAddressFilter, RouteAddressFilter
from edge.ip_access.policy import AddressPolicy
from mesh.chain import Filter


class IpAccessFeature(ConfiguredFilters):
    name = "ip_access"
    reload_keys = ("ip_access",)

    def __init__(self, config: EdgeConfig, registry: CollectorRegistry) -> None:
        refusals = Counter(
            "meshgate_address_refusals",
            "Requests refused for their client address (403), by the list that refused "
            "them: edge (the ip_access section) or route (the route's own).",
            ["scope"],
            registry=registry,
        )
        by_scope = {scope: refusals.labels(scope) for scope in ("edge", "route")}

        def on_refuse(scope: str) -> None:
            by_scope[scope].inc()

        self._on_refuse = on_refuse
        super().__init__(config)

    def filters_for(self, config: EdgeConfig) -> tuple[list[Filter], list[Filter]]:
        before: list[Filter] = []
        if config.ip_access is not None:
            policy = AddressPolicy.of(config.ip_access)
            if policy.restricts:
                before.append(EdgeAddressFilter(policy, self._on_refuse))
        after: list[Filter] = []
        if any(route.ip_access is not None for route in config.routes):
            after.append(RouteAddressFilter(self._on_refuse))
        return before, after
