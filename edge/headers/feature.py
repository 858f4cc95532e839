"""The header-changes feature of the edge (see :mod:`edge.filters.headers`).

Always built, so that a reload may add changes to the section or to a route; with no
changes anywhere it contributes no filter."""

from __future__ import annotations

from edge.config import EdgeConfig
from edge.feature import ConfiguredFilters
from edge.filters.headers import EdgeResponseHeadersFilter, RouteHeadersFilter
from edge.headers.rules import HeaderRules
from mesh.chain import Filter


class HeadersFeature(ConfiguredFilters):
    name = "headers"
    reload_keys = ("headers",)

    def filters_for(self, config: EdgeConfig) -> tuple[list[Filter], list[Filter]]:
        edge = HeaderRules(config.headers) if config.headers is not None else None
        before: list[Filter] = []
        if edge is not None and edge.has_response:
            before.append(EdgeResponseHeadersFilter(edge))
        after: list[Filter] = []
        if (edge is not None and edge.has_request) or any(r.headers for r in config.routes):
            after.append(RouteHeadersFilter(edge))
        return before, after
