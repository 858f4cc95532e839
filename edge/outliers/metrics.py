"""Outlier detection in ``/metrics``: ejections as they happen, instances out now."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from mesh.resilience.breaker import BreakerState
from mesh.resilience.outliers import OutlierDetector


class OutlierMetrics:
    """:meth:`transition` is the detector's ``on_transition``; :meth:`refresh` runs at
    each scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ejections = Counter(
            "meshgate_outlier_ejections",
            "Instances the edge ejected from load balancing after failed requests "
            "(their breaker opened), by service.",
            ["service"],
            registry=registry,
        )
        self.ejected = Gauge(
            "meshgate_outlier_ejected_instances",
            "Instances of a service out of load balancing now (their breaker open).",
            ["service"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._detector: OutlierDetector | None = None
        self._shown: set[str] = set()

    def transition(self, service: str, instance: str, old: BreakerState, new: BreakerState) -> None:
        if new is BreakerState.OPEN:
            self.ejections.labels(service).inc()

    def follow(self, detector: OutlierDetector | None) -> None:
        """The detector the gauges read from now on (None: outlier detection off)."""
        self._detector = detector

    def refresh(self) -> None:
        detector = self._detector
        services = set() if detector is None else set(detector.services())
        for service in services:
            assert detector is not None
            self.ejected.labels(service).set(detector.ejected_count(service))
        for gone in self._shown - services:  # gone from the catalog, or detection off
            self.ejected.labels(gone).set(0)
        self._shown = services
