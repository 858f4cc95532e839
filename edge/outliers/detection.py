"""The edge's outlier detection, built from its config: the detector, its metrics and
log lines, and the catalog it forgets gone instances by."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from edge.outliers.config import OutlierDetectionConfig
from edge.outliers.metrics import OutlierMetrics
from mesh.resilience.breaker import BreakerState
from mesh.resilience.outliers import OutlierDetector
from mesh.snapshot import Snapshot, SnapshotStore

log = logging.getLogger("meshgate.edge.outliers")


def outlier_detection(
    config: OutlierDetectionConfig, store: SnapshotStore, registry: CollectorRegistry
) -> tuple[OutlierDetector, OutlierMetrics] | None:
    """The detector the proxy consults and its metrics, following ``store`` (instances
    that leave the catalog are forgotten); None when the section is off."""
    if not config.enabled:
        return None
    metrics = OutlierMetrics(registry)

    def transition(service: str, instance: str, old: BreakerState, new: BreakerState) -> None:
        if new is BreakerState.OPEN:
            log.warning("instance %s of %s ejected after failed requests", instance, service)
        elif new is BreakerState.CLOSED:
            log.info("instance %s of %s back in rotation", instance, service)
        metrics.transition(service, instance, old, new)

    detector = OutlierDetector(
        config.breaker.settings(), config.max_ejection_share, on_transition=transition
    )
    metrics.follow(detector)

    def forget_gone(snapshot: Snapshot) -> None:
        detector.forget(i for entry in snapshot.services.values() for i in entry.instances)

    store.subscribe(forget_gone)
    return detector, metrics
