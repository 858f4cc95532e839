"""How many edges share the limits: healthy instances of the edge's own service in Consul.

Every edge registers itself in Consul (``registration`` in the edge config,
service ``meshgate-edge`` by default) with a check against its ``/readyz``.
The catalog watcher already follows every service into the snapshot, so the
count is read from there, recomputed once per snapshot (the local fallback
asks on every check, so it must be cheap). The count is at least 1: an edge
that sees no healthy edge (it has not passed its first check yet, or the
watcher follows a fixed service list without ``meshgate-edge``) takes the
whole limit for itself.
"""

from __future__ import annotations

from collections.abc import Callable

from mesh.snapshot import Snapshot, SnapshotStore


def healthy_count(snapshot: Snapshot, service: str) -> int:
    """Healthy instances of ``service`` in ``snapshot``, at least 1."""
    entry = snapshot.service(service)
    return max(1, len(entry.healthy)) if entry is not None else 1


class HealthyEdges:
    """A cheap callable returning the current number of healthy edges (>= 1).

    ``on_change(count)`` is called whenever a new snapshot changes the count
    (for a metric); it must not raise.
    """

    def __init__(
        self,
        store: SnapshotStore,
        service: str,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.service = service
        self._on_change = on_change
        self._count = healthy_count(store.current, service)
        if on_change is not None:
            on_change(self._count)
        store.subscribe(self._on_snapshot)

    def __call__(self) -> int:
        return self._count

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        count = healthy_count(snapshot, self.service)
        if count != self._count:
            self._count = count
            if self._on_change is not None:
                self._on_change(count)
