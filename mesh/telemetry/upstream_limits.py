"""Upstream limits in ``/metrics``: refusals as they happen, requests in flight and limits."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from mesh.resilience.concurrency import ServiceConcurrency


class UpstreamLimitMetrics:
    """:meth:`overflow` is the counter's ``on_overflow``; :meth:`refresh` runs at each
    scrape (requests in flight are counted in a dictionary, not in a gauge per request)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.overflows = Counter(
            "meshgate_upstream_overflow",
            "Requests refused at once (503) because their service had its limit of "
            "requests in flight (the edge's upstream_limits, a sidecar's "
            "resilience max_requests), by service.",
            ["service"],
            registry=registry,
        )
        self.active = Gauge(
            "meshgate_upstream_requests_active",
            "Requests in flight to a service, counted where a limit is set.",
            ["service"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.limit = Gauge(
            "meshgate_upstream_requests_limit",
            "A service's limit of requests in flight, per process.",
            ["service"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._counts: ServiceConcurrency | None = None
        self._shown: set[str] = set()

    def overflow(self, service: str) -> None:
        self.overflows.labels(service).inc()

    def follow(self, counts: ServiceConcurrency | None) -> None:
        """The counts the gauges read from now on (None: the section is off)."""
        self._counts = counts

    def refresh(self) -> None:
        counts = self._counts
        view = {} if counts is None else counts.view()
        for service, state in view.items():
            self.active.labels(service).set(state["active"])
            if state["limit"] is not None:
                self.limit.labels(service).set(state["limit"])
        for gone in self._shown - set(view):
            self.active.labels(gone).set(0)
        self._shown = set(view)
