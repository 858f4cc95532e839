"""Pure conversion of Consul's answers into snapshot entries (no I/O, table-tested).

An instance is healthy when every one of its checks (the node's and the
service's) is ``passing``, the same rule as ``/v1/health/service/<name>?passing``.
We ask Consul for all instances and apply the rule here, so the snapshot also
knows the unhealthy ones: for metrics by health, and so that routes a service
declares in its meta survive while all of its instances are critical (the
caller then gets 503 "no healthy instance", not 404 "no route").

An instance's zone and region (for :mod:`mesh.locality`) are each the first found
of, in order: the service's ``Locality`` (``Zone``/``Region``, Consul 1.17+), the
service's meta ``meshgate-zone``/``meshgate-region``, the node's ``Locality``, the
node's meta ``zone``/``region``. The service's own statement wins over its node's,
and Consul's field over meta; an older Consul (ours is 1.8) has no ``Locality``,
so node meta is the usual source, service meta the per-service exception.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from mesh.snapshot import Instance, ServiceEntry, Snapshot, make_snapshot


def entry_to_instance(service_name: str, entry: Mapping[str, Any]) -> Instance | None:
    """One element of ``/v1/health/service/<name>`` → Instance; None if it is unusable."""
    svc = entry.get("Service") or {}
    node = entry.get("Node") or {}
    port = svc.get("Port")
    address = svc.get("Address") or node.get("Address")
    if not isinstance(port, int) or port <= 0 or not address:
        return None
    checks: Sequence[Mapping[str, Any]] = entry.get("Checks") or ()
    healthy = all(c.get("Status") == "passing" for c in checks)
    meta = svc.get("Meta") or {}
    weights = svc.get("Weights") or {}
    connect = svc.get("Connect") or {}
    node_meta = node.get("Meta") or {}
    svc_locality = svc.get("Locality") or {}
    node_locality = node.get("Locality") or {}
    return Instance(
        id=str(svc.get("ID") or f"{service_name}-{address}-{port}"),
        service=service_name,
        address=str(address),
        port=port,
        healthy=healthy,
        tags=tuple(str(t) for t in (svc.get("Tags") or ())),
        meta=tuple(sorted((str(k), str(v)) for k, v in meta.items())),
        node=str(node.get("Node", "")),
        mesh_tls=connect.get("Native") is True,
        weight=_weight(weights.get("Passing")),
        zone=_first(
            svc_locality.get("Zone"),
            meta.get(ZONE_META),
            node_locality.get("Zone"),
            node_meta.get("zone"),
        ),
        region=_first(
            svc_locality.get("Region"),
            meta.get(REGION_META),
            node_locality.get("Region"),
            node_meta.get("region"),
        ),
    )


ZONE_META = "meshgate-zone"
"""Service meta naming the instance's zone, over its node's (``zone`` node meta)."""
REGION_META = "meshgate-region"


def _first(*values: Any) -> str:
    """The first of ``values`` that is a non-empty string, else ""."""
    for value in values:
        if isinstance(value, str) and value:
            return value
    return ""


def _weight(passing: Any) -> int:
    """``Weights.Passing`` as an instance's weight. Consul refuses a registration with
    ``Passing`` below 1 and fills in 1 when none is given; anything else (an old
    agent's answer without ``Weights``) counts as 1, an equal share. ``Warning`` is
    never read: an instance with a check in ``warning`` is not healthy here."""
    usable = isinstance(passing, int) and not isinstance(passing, bool) and passing >= 1
    return passing if usable else 1


def service_entry(name: str, entries: Iterable[Mapping[str, Any]]) -> ServiceEntry:
    """The service's usable instances, sorted by id; ids unique within the service.

    Consul makes a service ID unique per agent, not per cluster: two nodes may each
    register ``users-1``. Every id shared by several nodes is qualified with its
    node (``users-1@node-b``), so that balancing, breakers and ejection, which tell
    instances apart by id, never take two for one.
    """
    instances = [i for i in (entry_to_instance(name, e) for e in entries) if i is not None]
    counts = Counter(i.id for i in instances)
    if len(counts) < len(instances):
        instances = [
            replace(i, id=f"{i.id}@{i.node}") if counts[i.id] > 1 else i for i in instances
        ]
    instances.sort(key=lambda i: i.id)
    return ServiceEntry(name=name, instances=tuple(instances))


def build_snapshot(
    raw: Mapping[str, Sequence[Mapping[str, Any]]], source: str = "consul"
) -> Snapshot:
    """``{service name: health entries}`` → Snapshot; deterministic for equal input."""
    return make_snapshot({name: service_entry(name, raw[name]) for name in sorted(raw)}, source)
