"""The CORS feature of the edge: one filter before routing (see :mod:`edge.filters.cors`)
when the ``cors`` section is set, and ``meshgate_cors_preflights_total{outcome}``
(``allowed``, ``refused``). Always built, so that a reload may turn CORS on or off."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from edge.config import EdgeConfig
from edge.cors.policy import CorsPolicy
from edge.feature import ConfiguredFilters
from edge.filters.cors import CorsFilter
from mesh.chain import Filter


class CorsFeature(ConfiguredFilters):
    name = "cors"
    reload_keys = ("cors",)

    def __init__(self, config: EdgeConfig, registry: CollectorRegistry) -> None:
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
        super().__init__(config)

    def filters_for(self, config: EdgeConfig) -> tuple[list[Filter], list[Filter]]:
        if config.cors is None:
            return [], []
        return [CorsFilter(CorsPolicy(config.cors), self._on_preflight)], []
