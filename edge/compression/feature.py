"""The compression feature of the edge: one filter after routing (see
:mod:`edge.filters.compression`) when the ``compression`` section is set, and
``meshgate_compressed_responses_total``. Always built, so that a reload may turn
compression on or off."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from edge.config import EdgeConfig
from edge.feature import ConfiguredFilters
from edge.filters.compression import CompressionFilter
from mesh.chain import Filter
from mesh.http.compression import ResponseCompression


class CompressionFeature(ConfiguredFilters):
    name = "compression"
    reload_keys = ("compression",)

    def __init__(self, config: EdgeConfig, registry: CollectorRegistry) -> None:
        compressed = Counter(
            "meshgate_compressed_responses",
            "Services' answers gzipped at the edge for the client.",
            registry=registry,
        )
        self._count = compressed.inc
        super().__init__(config)

    def filters_for(self, config: EdgeConfig) -> tuple[list[Filter], list[Filter]]:
        c = config.compression
        if c is None:
            return [], []
        policy = ResponseCompression(c.content_types, c.min_size, self._count, level=c.level)
        return [], [CompressionFilter(policy)]
