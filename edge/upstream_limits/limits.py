"""The edge's ``upstream_limits`` section applied: :class:`mesh.upstream_limits.UpstreamLimits`
configured from it at start and on each reload that changes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from edge.upstream_limits.config import UpstreamLimitsConfig
from mesh.config.reload import Reload
from mesh.upstream_limits import UpstreamLimits

if TYPE_CHECKING:
    from edge.config import EdgeConfig


class EdgeUpstreamLimits(UpstreamLimits):
    """The section's limits; a reload that changes the section applies it (see the base)."""

    def __init__(self, config: UpstreamLimitsConfig, registry: CollectorRegistry) -> None:
        super().__init__(config.max_requests, config.services, registry)
        self._config = config

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        new = config.upstream_limits
        if new == self._config:
            return None

        def commit() -> None:
            self._config = new
            self.configure(new.max_requests, new.services)

        return Reload(("upstream_limits",), commit)
