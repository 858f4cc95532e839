"""Counting healthy edges from the snapshot (edge/ratelimit/instances.py)."""

from __future__ import annotations

from edge.ratelimit.instances import HealthyEdges, healthy_count
from mesh.snapshot import Instance, ServiceEntry, Snapshot, SnapshotStore, make_snapshot


def snapshot_with(*healthy: bool, service: str = "meshgate-edge") -> Snapshot:
    instances = tuple(
        Instance(f"e{i}", service, "127.0.0.1", 8000 + i, healthy=h) for i, h in enumerate(healthy)
    )
    return make_snapshot({service: ServiceEntry(service, instances)}, "test")


def test_counts_healthy_instances_at_least_one() -> None:
    assert healthy_count(snapshot_with(True, True, False), "meshgate-edge") == 2
    assert healthy_count(snapshot_with(False), "meshgate-edge") == 1
    assert healthy_count(snapshot_with(True, service="other"), "meshgate-edge") == 1


def test_follows_the_snapshots_and_reports_changes() -> None:
    store = SnapshotStore()
    seen: list[int] = []
    edges = HealthyEdges(store, "meshgate-edge", on_change=seen.append)
    assert edges() == 1 and seen == [1]
    store.publish(snapshot_with(True, True, True))
    assert edges() == 3
    store.publish(snapshot_with(True, False, True))
    assert edges() == 2
    store.publish(snapshot_with(True, True, False))
    assert seen == [1, 3, 2]  # same count: no change reported
