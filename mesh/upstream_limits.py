"""Requests in flight per upstream service, bounded, as a process runs them: the counts
a proxy consults (:mod:`mesh.resilience.concurrency`), their metrics and admin view.

The edge configures it from its ``upstream_limits`` section, the sidecar from each
service's ``resilience`` policy (``max_requests``); either calls :meth:`configure`
on a reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from mesh.resilience.concurrency import ServiceConcurrency
from mesh.telemetry.upstream_limits import UpstreamLimitMetrics


class Bounded(Protocol):
    """A proxy that consults :attr:`concurrency` on each request (None: no bound)."""

    concurrency: ServiceConcurrency | None


class UpstreamLimits:
    """:attr:`concurrency` is the one to give the proxy (None while no limit is set).

    One count is kept for the process's life: new limits apply from the next
    request, and requests in flight stay counted (a lower limit refuses until
    enough of them are over). With no limit left the proxy stops counting; with
    limits again, requests that started in between are not counted.
    """

    def __init__(
        self,
        default: int | None,
        limits: Mapping[str, int | None],
        registry: CollectorRegistry,
    ) -> None:
        """``default``: every service's limit (None: none) but those ``limits`` names
        (None there: that service has none)."""
        self._metrics = UpstreamLimitMetrics(registry)
        self._counts = ServiceConcurrency(default, limits, self._metrics.overflow)
        self._default = default
        self._enabled = _any_limit(default, limits)
        self._proxy: Bounded | None = None
        self._metrics.follow(self.concurrency)

    @property
    def concurrency(self) -> ServiceConcurrency | None:
        return self._counts if self._enabled else None

    def serve(self, proxy: Bounded) -> None:
        """The proxy whose counts :meth:`configure` turns on or off."""
        self._proxy = proxy

    def configure(self, default: int | None, limits: Mapping[str, int | None]) -> None:
        """New limits from the next request (the counts kept)."""
        self._counts.configure(default, limits)
        self._default = default
        self._enabled = _any_limit(default, limits)
        self._metrics.follow(self.concurrency)
        if self._proxy is not None:
            self._proxy.concurrency = self.concurrency

    def refresh_metrics(self) -> None:
        self._metrics.refresh()

    def view(self) -> dict[str, Any]:
        """The admin listener's ``/upstream-limits``."""
        return {
            "enabled": self._enabled,
            "max_requests": self._default,
            "services": self._counts.view() if self._enabled else {},
        }


def _any_limit(default: int | None, limits: Mapping[str, int | None]) -> bool:
    return default is not None or any(limit is not None for limit in limits.values())
