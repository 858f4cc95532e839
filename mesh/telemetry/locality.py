"""Locality-aware routing in ``/metrics``: requests kept in the proxy's zone, or not."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from mesh.config.sections import LocalityConfig
from mesh.locality import LocalityRouter, Scope
from mesh.snapshot import SnapshotStore
from mesh.telemetry.metrics import adder


class LocalityMetrics:
    """:meth:`count` is the :class:`~mesh.locality.LocalityRouter`'s ``count``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "meshgate_locality_requests",
            "Requests routed with locality, by service and by the set their instance "
            "was drawn from: zone (the proxy's), region (the zone had too few), any "
            "(the region too).",
            ["service", "scope"],
            registry=registry,
        )

    def count(self, service: str, scope: Scope) -> Callable[[], None]:
        # Looked up once per service and scope, not per request; with single-process
        # values it adds in place, without the child's lock (mesh.telemetry.metrics.adder).
        return adder(self.requests.labels(service, scope.value))


def locality_router(
    config: LocalityConfig | None, store: SnapshotStore, registry: CollectorRegistry
) -> LocalityRouter | None:
    """The router ``discovery.locality`` makes, counted in ``registry`` and following
    ``store`` to forget gone services; None when locality is off (not configured, or
    off for every service), so that the proxy does nothing more per request."""
    if config is None:
        return None
    router = config.router(LocalityMetrics(registry).count)
    if router is not None:
        store.subscribe(lambda snapshot: router.forget(snapshot.services))
    return router
