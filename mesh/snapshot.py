"""The immutable picture of the mesh that every request reads, and the store that swaps it.

Providers (Consul, a static file) build a whole new :class:`Snapshot` on every
change and hand it to :meth:`SnapshotStore.publish`; readers take
``store.current`` once per request and never see half an update (the swap is a
single attribute assignment on the event loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of a service as the catalog lists it (for a mesh: its sidecar's address)."""

    id: str
    service: str
    address: str
    port: int
    healthy: bool = True
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    node: str = ""
    mesh_tls: bool = False
    """Registered as Consul Connect-native: reached over mesh TLS (:mod:`mesh.mtls`)."""
    weight: int = 1
    """Share of the service's traffic relative to its other instances, at least 1
    (Consul's ``Weights.Passing``): weight 3 takes three times what weight 1 does."""
    weighted: bool = False
    """The instances of this service do not all have the same weight, so balancers
    must read ``weight``. Set by :class:`ServiceEntry` for every instance of the
    service, so that a balancer tells an unweighted service (the usual case) by one
    attribute of any instance, whatever subset of them it is given."""
    zone: str = ""
    """The availability zone the instance runs in ("": unknown), for locality-aware
    routing (:mod:`mesh.locality`)."""
    region: str = ""
    """The region the instance runs in ("": unknown)."""

    @property
    def authority(self) -> str:
        return f"{self.address}:{self.port}"

    def meta_dict(self) -> dict[str, str]:
        return dict(self.meta)


@dataclass(frozen=True)
class ServiceEntry:
    """All known instances of one service, healthy or not, sorted by id.

    Creating one sets every instance's ``weighted`` to whether their weights differ
    (all of them, healthy or not: the flag does not change with health).
    """

    name: str
    instances: tuple[Instance, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "instances", mark_weighted(self.instances))

    @cached_property
    def healthy(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.healthy)

    def __hash__(self) -> int:
        return hash((self.name, self.instances))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ServiceEntry)
            and self.name == other.name
            and self.instances == other.instances
        )


@dataclass(frozen=True)
class Snapshot:
    """Every service the mesh knows of. Equality ignores ``source`` detail and build time."""

    services: Mapping[str, ServiceEntry] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "empty"

    def service(self, name: str) -> ServiceEntry | None:
        return self.services.get(name)

    def same_content(self, other: Snapshot) -> bool:
        return dict(self.services) == dict(other.services)


EMPTY = Snapshot()


def mark_weighted(instances: tuple[Instance, ...]) -> tuple[Instance, ...]:
    """``instances`` with ``weighted`` set on each to whether their weights differ;
    the same tuple when every flag is already right."""
    weighted = len({i.weight for i in instances}) > 1
    if all(i.weighted is weighted for i in instances):
        return instances
    return tuple(replace(i, weighted=weighted) for i in instances)


Listener = Callable[[Snapshot], None]


class SnapshotStore:
    """Holds the current snapshot; publishes only real changes; tracks freshness.

    * ``current`` is always a complete snapshot (EMPTY until the first publish).
    * ``publish`` drops a snapshot equal to the current one and returns False;
      otherwise it swaps and calls every listener synchronously, in order.
    * ``mark_synced`` says the provider is in sync with its source (for Consul:
      a query just succeeded, and a blocking query is following changes);
      ``mark_out_of_sync`` says it lost its source. ``age()`` is 0 while in
      sync and otherwise the time since the last sync, which is how a Consul
      outage becomes visible while the last snapshot keeps serving.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.current: Snapshot = EMPTY
        self._listeners: list[Listener] = []
        self._synced_at: float | None = None
        self._in_sync = False
        self.ready = asyncio.Event()
        self.swaps = 0

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, snapshot: Snapshot) -> bool:
        self.mark_synced()
        if self.ready.is_set() and snapshot.same_content(self.current):
            return False
        self.current = snapshot
        self.swaps += 1
        for listener in self._listeners:
            listener(snapshot)
        self.ready.set()
        return True

    def mark_synced(self) -> None:
        self._synced_at = self._clock()
        self._in_sync = True

    def mark_out_of_sync(self) -> None:
        self._in_sync = False

    @property
    def in_sync(self) -> bool:
        return self._in_sync

    def age(self) -> float | None:
        """0 while in sync; else seconds since the last sync; None before the first one."""
        if self._synced_at is None:
            return None
        if self._in_sync:
            return 0.0
        return self._clock() - self._synced_at


def make_snapshot(services: Mapping[str, ServiceEntry], source: str) -> Snapshot:
    return Snapshot(services=MappingProxyType(dict(services)), source=source)
