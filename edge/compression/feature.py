"""The compression feature of the edge: one filter after routing (see
:mod:`edge.filters.compression`), and ``meshgate_compressed_responses_total``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from edge.compression.config import CompressionConfig
from edge.config import EdgeConfig
from edge.feature import BaseFeature
from edge.filters.compression import CompressionFilter
from edge.reloadable import Reload
from mesh.chain import Filter
from mesh.http.compression import ResponseCompression


class CompressionFeature(BaseFeature):
    name = "compression"

    def __init__(self, config: CompressionConfig, registry: CollectorRegistry) -> None:
        compressed = Counter(
            "meshgate_compressed_responses",
            "Services' answers gzipped at the edge for the client.",
            registry=registry,
        )
        self._count = compressed.inc
        self._filter = self._make_filter(config)

    def _make_filter(self, config: CompressionConfig) -> CompressionFilter:
        policy = ResponseCompression(
            config.content_types, config.min_size, self._count, level=config.level
        )
        return CompressionFilter(policy)

    def after_routing(self) -> list[Filter]:
        return [self._filter]

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """The new settings; None when the file turns compression off (that waits for a
        restart)."""
        if config.compression is None:
            return None
        compression_filter = self._make_filter(config.compression)

        def commit() -> None:
            self._filter = compression_filter

        return Reload(("compression",), commit)
