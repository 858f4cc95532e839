"""The CORS feature of the edge: one filter before routing (see :mod:`edge.filters.cors`),
and ``meshgate_cors_preflights_total{outcome}`` (``allowed``, ``refused``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from edge.config import EdgeConfig
from edge.cors.config import CorsConfig
from edge.cors.policy import CorsPolicy
from edge.feature import BaseFeature
from edge.filters.cors import CorsFilter
from edge.reloadable import Reload
from mesh.chain import Filter


class CorsFeature(BaseFeature):
    name = "cors"

    def __init__(self, config: CorsConfig, registry: CollectorRegistry) -> None:
        preflights = Counter(
            "meshgate_cors_preflights",
            "CORS preflights answered at the edge, by outcome (allowed: 204; refused: 403).",
            ["outcome"],
            registry=registry,
        )
        allowed, refused = preflights.labels("allowed"), preflights.labels("refused")

        def on_preflight(ok: bool) -> None:
            (allowed if ok else refused).inc()

        self._on_preflight = on_preflight
        self._filter = CorsFilter(CorsPolicy(config), on_preflight)

    def before_routing(self) -> list[Filter]:
        return [self._filter]

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """The new policy; None when the file turns CORS off (that waits for a restart)."""
        if config.cors is None:
            return None
        cors_filter = CorsFilter(CorsPolicy(config.cors), self._on_preflight)

        def commit() -> None:
            self._filter = cors_filter

        return Reload(("cors",), commit)
