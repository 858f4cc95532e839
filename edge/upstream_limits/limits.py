"""The edge's upstream limits as configured now: the counts the proxy consults, their
metrics and admin view, and their reload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from edge.upstream_limits.config import UpstreamLimitsConfig
from edge.upstream_limits.metrics import UpstreamLimitMetrics
from mesh.config.reload import Reload
from mesh.resilience.concurrency import ServiceConcurrency

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from mesh.proxy import Proxy


class UpstreamLimits:
    """:attr:`concurrency` is the one to give the proxy (None while the section is off).

    One count is kept for the process's life: a reload that changes the limits
    applies them from the next request, and requests in flight stay counted (a
    lower limit refuses until enough of them are over). Turned off, the proxy
    stops counting; turned on again, requests that started while it was off are
    not counted.
    """

    def __init__(self, config: UpstreamLimitsConfig, registry: CollectorRegistry) -> None:
        self._config = config
        self._metrics = UpstreamLimitMetrics(registry)
        self._counts = ServiceConcurrency(
            config.max_requests, config.services, self._metrics.overflow
        )
        self._proxy: Proxy | None = None
        self._metrics.follow(self.concurrency)

    @property
    def concurrency(self) -> ServiceConcurrency | None:
        return self._counts if self._config.enabled else None

    def serve(self, proxy: Proxy) -> None:
        """The proxy whose counts a reload turns on or off (made with :attr:`concurrency`)."""
        self._proxy = proxy

    def refresh_metrics(self) -> None:
        self._metrics.refresh()

    def view(self) -> dict[str, Any]:
        """The admin listener's ``/upstream-limits``."""
        config = self._config
        return {
            "enabled": config.enabled,
            "max_requests": config.max_requests,
            "services": self._counts.view() if config.enabled else {},
        }

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        new = config.upstream_limits
        if new == self._config:
            return None

        def commit() -> None:
            self._config = new
            self._counts.configure(new.max_requests, new.services)
            self._metrics.follow(self.concurrency)
            if self._proxy is not None:
                self._proxy.concurrency = self.concurrency

        return Reload(("upstream_limits",), commit)
