"""``meshgate_locality_requests_total`` and the router a process makes from its config."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from mesh.config.sections import LocalityConfig
from mesh.snapshot import Instance, ServiceEntry, SnapshotStore, make_snapshot
from mesh.telemetry.locality import locality_router


def _count(registry: CollectorRegistry, service: str, scope: str) -> float | None:
    return registry.get_sample_value(
        "meshgate_locality_requests_total", {"service": service, "scope": scope}
    )


def test_no_section_no_router() -> None:
    assert locality_router(None, SnapshotStore(), CollectorRegistry()) is None


def test_requests_are_counted_by_service_and_scope() -> None:
    registry = CollectorRegistry()
    store = SnapshotStore()
    router = locality_router(LocalityConfig(zone="z1", region="r1"), store, registry)
    assert router is not None
    local = Instance("u1", "users", "10.0.0.1", 80, zone="z1", region="r1")
    near = Instance("u2", "users", "10.0.0.2", 80, zone="z2", region="r1")
    healthy = ServiceEntry("users", (local, near)).healthy
    for _ in range(3):
        router.narrow("users", healthy, healthy)
    router.narrow("users", healthy, (near,))
    assert _count(registry, "users", "zone") == 3
    assert _count(registry, "users", "region") == 1
    assert _count(registry, "users", "any") is None


def test_router_follows_the_store() -> None:
    store = SnapshotStore()
    router = locality_router(LocalityConfig(zone="z1"), store, CollectorRegistry())
    assert router is not None
    healthy = (Instance("u1", "users", "10.0.0.1", 80, zone="z1"),)
    router.narrow("users", healthy, healthy)
    store.publish(make_snapshot({}, "test"))
    assert router._memo == {}
