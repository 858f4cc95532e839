"""Prometheus metrics of the proxy engine, shared by edge and sidecar (``meshgate_`` prefix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mesh.snapshot import Snapshot, SnapshotStore

# Fine at the low end: a proxy hop on loopback takes well under a millisecond.
LATENCY_BUCKETS = (
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry, role: str) -> None:
        self.role = role
        self.requests = Counter(
            "meshgate_requests",
            "Requests handled, by route, service and status class.",
            ["role", "route", "service", "code_class"],
            registry=registry,
        )
        self.duration = Histogram(
            "meshgate_request_duration_seconds",
            "Time from request received to response completed.",
            ["role", "route", "service"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.catalog_age = Gauge(
            "meshgate_catalog_age_seconds",
            "Seconds since the catalog was last in sync with its source (0 while in sync).",
            ["role"],
            registry=registry,
        )
        self.instances = Gauge(
            "meshgate_instances",
            "Instances per service and health in the current snapshot.",
            ["role", "service", "health"],
            registry=registry,
        )
        self.catalog_swaps = Counter(
            "meshgate_catalog_updates",
            "Snapshots published because the catalog changed.",
            ["role"],
            registry=registry,
        )

    def follow(self, store: SnapshotStore) -> None:
        """Keep the catalog gauges up to date from ``store``."""
        self.catalog_age.labels(self.role).set_function(lambda: store.age() or 0.0)
        store.subscribe(self._on_snapshot)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.catalog_swaps.labels(self.role).inc()
        self.instances.clear()
        for name, entry in snapshot.services.items():
            healthy = len(entry.healthy)
            self.instances.labels(self.role, name, "passing").set(healthy)
            self.instances.labels(self.role, name, "critical").set(len(entry.instances) - healthy)
