"""The edge's outlier detection as configured now: the detector the proxy consults, its
metrics and log lines, the catalog it forgets gone instances by, and its reload."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from edge.outliers.config import OutlierDetectionConfig
from edge.outliers.metrics import OutlierMetrics
from edge.outliers.sharing import EjectionSharing
from mesh.admin_workers import AdminWorkers
from mesh.config.reload import Reload
from mesh.resilience.breaker import BreakerState
from mesh.resilience.outliers import OutlierDetector
from mesh.snapshot import Snapshot, SnapshotStore

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from mesh.proxy import Proxy

log = logging.getLogger("meshgate.edge.outliers")


class OutlierDetection:
    """:attr:`detector` is the one to give the proxy (None while the section is off).

    A reload (SIGHUP) that changes the ``outlier_detection`` section applies it
    from the next request: a new detector, every instance back in rotation and
    judged afresh under the new settings (requests in flight finish on the old
    one), or none when the section is turned off. A reload that leaves the
    section as it was keeps every breaker's state, so an ejected instance stays
    out.
    """

    def __init__(
        self,
        config: OutlierDetectionConfig,
        store: SnapshotStore,
        registry: CollectorRegistry,
        workers: AdminWorkers | None = None,
    ) -> None:
        """``workers``: the edge's other workers, told of each ejection (None: alone)."""
        self._config = config
        self._metrics = OutlierMetrics(registry)
        self.sharing = EjectionSharing(workers or AdminWorkers(None), lambda: self.detector)
        """Ejections told to and by the other workers, and ``POST /outliers/ejections``."""
        self.detector = self._detector_for(config)
        self._metrics.follow(self.detector)
        self._proxy: Proxy | None = None
        store.subscribe(self._forget_gone)

    def serve(self, proxy: Proxy) -> None:
        """The proxy whose detector a reload replaces (made with :attr:`detector`)."""
        self._proxy = proxy

    def refresh_metrics(self) -> None:
        self._metrics.refresh()

    def view(self) -> dict[str, Any]:
        """The admin listener's ``/outliers``."""
        detector = self.detector
        return {
            "enabled": detector is not None,
            "services": {} if detector is None else detector.view(),
        }

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        new = config.outlier_detection
        if new == self._config:
            return None

        def commit() -> None:
            self._config = new
            self.detector = self._detector_for(new)
            self._metrics.follow(self.detector)
            if self._proxy is not None:
                self._proxy.outliers = self.detector

        return Reload(("outlier_detection",), commit)

    def _detector_for(self, config: OutlierDetectionConfig) -> OutlierDetector | None:
        if not config.enabled:
            return None
        return OutlierDetector(
            config.breaker.settings(),
            config.max_ejection_share,
            services=config.service_policies(),
            on_transition=self._transition,
        )

    def _transition(
        self, service: str, instance: str, old: BreakerState, new: BreakerState
    ) -> None:
        if new is BreakerState.OPEN:
            log.warning("instance %s of %s ejected after failed requests", instance, service)
            if self.detector is not None:
                self.sharing.announce(service, instance, self.detector.open_for(service, instance))
        elif new is BreakerState.CLOSED:
            log.info("instance %s of %s back in rotation", instance, service)
        self._metrics.transition(service, instance, old, new)

    def _forget_gone(self, snapshot: Snapshot) -> None:
        if self.detector is not None:
            self.detector.forget(i for entry in snapshot.services.values() for i in entry.instances)
