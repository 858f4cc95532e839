"""Consul ``/v1/health/service/<name>`` entries → snapshot instances (table-driven)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from discovery.convert import build_snapshot, entry_to_instance, service_entry
from mesh.snapshot import Instance, ServiceEntry


def _check(
    status: str, check_id: str = "service:users-1", service_id: str = "users-1"
) -> dict[str, Any]:
    return {
        "Node": "node-1",
        "CheckID": check_id,
        "Name": f"check {check_id}",
        "Status": status,
        "Notes": "",
        "Output": "",
        "ServiceID": service_id,
        "ServiceName": "users" if service_id else "",
    }


SERF = {**_check("passing", "serfHealth", ""), "Name": "Serf Health Status"}


def consul_entry(
    service_id: str | None = "users-1",
    *,
    node: str = "node-1",
    node_address: str = "10.0.0.1",
    address: str | None = "10.0.1.1",
    port: Any = 15000,
    tags: list[str] | None = None,
    meta: dict[str, str] | None = None,
    checks: list[dict[str, Any]] | None = None,
    connect: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One element of Consul's health endpoint answer, as Consul 1.8 sends it."""
    service: dict[str, Any] = {
        "ID": service_id,
        "Service": "users",
        "Tags": tags,
        "Address": address,
        "TaggedAddresses": None,
        "Meta": meta,
        "Port": port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": False,
        "Proxy": {"MeshGateway": {}, "Expose": {}},
        "Connect": {} if connect is None else connect,
        "CreateIndex": 10,
        "ModifyIndex": 10,
    }
    return {
        "Node": {
            "ID": "5b5a3b6e-0000-0000-0000-000000000000",
            "Node": node,
            "Address": node_address,
            "Datacenter": "dc1",
            "TaggedAddresses": {"lan": node_address, "wan": node_address},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 5,
            "ModifyIndex": 5,
        },
        "Service": service,
        "Checks": [SERF, _check("passing")] if checks is None else checks,
    }


# --- entry_to_instance ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(
            consul_entry(),
            Instance(
                id="users-1",
                service="users",
                address="10.0.1.1",
                port=15000,
                healthy=True,
                node="node-1",
            ),
            id="all-checks-passing",
        ),
        pytest.param(
            consul_entry(checks=[SERF, _check("warning")]),
            Instance(
                id="users-1",
                service="users",
                address="10.0.1.1",
                port=15000,
                healthy=False,
                node="node-1",
            ),
            id="service-check-warning-is-unhealthy",
        ),
        pytest.param(
            consul_entry(checks=[SERF, _check("critical")]),
            Instance(
                id="users-1",
                service="users",
                address="10.0.1.1",
                port=15000,
                healthy=False,
                node="node-1",
            ),
            id="service-check-critical",
        ),
        pytest.param(
            consul_entry(checks=[{**SERF, "Status": "critical"}, _check("passing")]),
            Instance(
                id="users-1",
                service="users",
                address="10.0.1.1",
                port=15000,
                healthy=False,
                node="node-1",
            ),
            id="node-check-critical",
        ),
        pytest.param(
            consul_entry(checks=[SERF, _check("passing"), _check("maintenance", "_maint")]),
            Instance(
                id="users-1",
                service="users",
                address="10.0.1.1",
                port=15000,
                healthy=False,
                node="node-1",
            ),
            id="unknown-status-is-not-passing",
        ),
        pytest.param(
            consul_entry(checks=[]),
            Instance(
                id="users-1",
                service="users",
                address="10.0.1.1",
                port=15000,
                healthy=True,
                node="node-1",
            ),
            id="no-checks-is-healthy",
        ),
        pytest.param(
            consul_entry(address=""),
            Instance(id="users-1", service="users", address="10.0.0.1", port=15000, node="node-1"),
            id="empty-service-address-falls-back-to-node",
        ),
        pytest.param(
            consul_entry(address=None),
            Instance(id="users-1", service="users", address="10.0.0.1", port=15000, node="node-1"),
            id="null-service-address-falls-back-to-node",
        ),
        pytest.param(
            consul_entry(
                tags=["v1", "canary"],
                meta={"version": "1.2", "meshgate-route": "/api/users", "a": "b"},
            ),
            Instance(
                id="users-1",
                service="users",
                address="10.0.1.1",
                port=15000,
                node="node-1",
                tags=("v1", "canary"),
                meta=(("a", "b"), ("meshgate-route", "/api/users"), ("version", "1.2")),
            ),
            id="tags-kept-in-order-meta-sorted",
        ),
        pytest.param(
            consul_entry(tags=[], meta={}),
            Instance(id="users-1", service="users", address="10.0.1.1", port=15000, node="node-1"),
            id="empty-tags-and-meta",
        ),
        pytest.param(
            consul_entry(service_id=None),
            Instance(
                id="users-10.0.1.1-15000",
                service="users",
                address="10.0.1.1",
                port=15000,
                node="node-1",
            ),
            id="missing-id-derived-from-address-and-port",
        ),
        pytest.param(
            consul_entry(node="worker-7", node_address="192.168.1.7", address=""),
            Instance(
                id="users-1",
                service="users",
                address="192.168.1.7",
                port=15000,
                node="worker-7",
            ),
            id="node-name-recorded",
        ),
        pytest.param(
            consul_entry(connect={"Native": True}),
            Instance(
                id="users-1",
                service="users",
                address="10.0.1.1",
                port=15000,
                node="node-1",
                mesh_tls=True,
            ),
            id="connect-native-is-reached-over-mesh-tls",
        ),
        pytest.param(
            consul_entry(connect={"Native": False}),
            Instance(id="users-1", service="users", address="10.0.1.1", port=15000, node="node-1"),
            id="connect-not-native",
        ),
        pytest.param(
            consul_entry(connect={"Native": "true"}),
            Instance(id="users-1", service="users", address="10.0.1.1", port=15000, node="node-1"),
            id="connect-native-must-be-a-boolean",
        ),
    ],
)
def test_entry_to_instance(entry: dict[str, Any], expected: Instance) -> None:
    assert entry_to_instance("users", entry) == expected


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(consul_entry(port=None), id="missing-port"),
        pytest.param(consul_entry(port=0), id="zero-port"),
        pytest.param(consul_entry(port=-1), id="negative-port"),
        pytest.param(consul_entry(port="15000"), id="string-port"),
        pytest.param(consul_entry(address="", node_address=""), id="no-address-at-all"),
        pytest.param({"Node": {"Node": "n", "Address": "10.0.0.1"}}, id="no-service"),
        pytest.param({}, id="empty-entry"),
        pytest.param({"Node": None, "Service": None, "Checks": None}, id="all-null"),
    ],
)
def test_unusable_entries_are_skipped(entry: dict[str, Any]) -> None:
    assert entry_to_instance("users", entry) is None


def test_minimal_entry_without_node_or_checks() -> None:
    entry = {"Service": {"ID": "u", "Address": "10.0.0.5", "Port": 80}}
    assert entry_to_instance("users", entry) == Instance(
        id="u", service="users", address="10.0.0.5", port=80, healthy=True, node=""
    )


def test_meta_values_become_strings() -> None:
    entry = consul_entry(meta={"weight": 3, "on": True})  # type: ignore[dict-item]
    inst = entry_to_instance("users", entry)
    assert inst is not None
    assert inst.meta == (("on", "True"), ("weight", "3"))


def test_service_name_comes_from_the_caller() -> None:
    inst = entry_to_instance("users-v2", consul_entry())
    assert inst is not None
    assert inst.service == "users-v2"


# --- service_entry --------------------------------------------------------------------------


def test_service_entry_sorts_by_id_and_skips_unusable() -> None:
    entries = [
        consul_entry("users-c", address="10.0.1.3"),
        consul_entry("users-a", address="10.0.1.1", checks=[SERF, _check("critical")]),
        consul_entry("users-x", port=None),
        consul_entry("users-b", address="10.0.1.2"),
    ]
    entry = service_entry("users", entries)
    assert entry.name == "users"
    assert [i.id for i in entry.instances] == ["users-a", "users-b", "users-c"]
    assert [i.id for i in entry.healthy] == ["users-b", "users-c"]


def test_an_id_registered_on_two_nodes_is_qualified_with_each_node() -> None:
    """Consul IDs are unique per agent only: two nodes' ``users-1`` stay two instances."""
    entries = [
        consul_entry("users-1", node="node-b", address="10.0.1.2"),
        consul_entry("users-1", node="node-a", address="10.0.1.1"),
        consul_entry("users-2", node="node-a", address="10.0.1.1", port=15001),
    ]
    entry = service_entry("users", entries)
    ids = [(i.id, i.address) for i in entry.instances]
    assert ids == [
        ("users-1@node-a", "10.0.1.1"),
        ("users-1@node-b", "10.0.1.2"),
        ("users-2", "10.0.1.1"),
    ]


def test_service_entry_all_critical_keeps_instances() -> None:
    entries = [consul_entry(f"users-{n}", checks=[_check("critical")]) for n in range(3)]
    entry = service_entry("users", entries)
    assert len(entry.instances) == 3
    assert entry.healthy == ()


def test_service_entry_empty() -> None:
    assert service_entry("users", []) == ServiceEntry("users", ())


# --- build_snapshot -------------------------------------------------------------------------

RAW = {
    "users": [consul_entry("users-2", address="10.0.1.2"), consul_entry("users-1")],
    "orders": [consul_entry("orders-1", address="10.0.2.1", tags=["v2"])],
    "empty": [],
}


def test_build_snapshot() -> None:
    snap = build_snapshot(RAW)
    assert snap.source == "consul"
    assert list(snap.services) == ["empty", "orders", "users"]
    users = snap.service("users")
    assert users is not None
    assert [i.id for i in users.instances] == ["users-1", "users-2"]
    orders = snap.service("orders")
    assert orders is not None
    assert orders.instances[0].service == "orders"
    assert orders.instances[0].tags == ("v2",)
    assert snap.service("empty") == ServiceEntry("empty", ())


def test_build_snapshot_source_label() -> None:
    assert build_snapshot({}, source="consul:dc2").source == "consul:dc2"


@pytest.mark.parametrize("seed", range(5))
def test_build_snapshot_is_deterministic_under_input_order(seed: int) -> None:
    rng = random.Random(seed)
    shuffled = {name: rng.sample(entries, len(entries)) for name, entries in RAW.items()}
    names = list(shuffled)
    rng.shuffle(names)
    reordered = {name: shuffled[name] for name in names}
    one, two = build_snapshot(RAW), build_snapshot(reordered)
    assert one.same_content(two)
    assert one == two
    assert list(one.services) == list(two.services)


@pytest.mark.parametrize(
    ("mutate", "same"),
    [
        pytest.param(lambda raw: None, True, id="identical-copy"),
        pytest.param(
            lambda raw: raw["users"][0]["Service"].update(ModifyIndex=99),
            True,
            id="index-only-change-is-equal",
        ),
        pytest.param(
            lambda raw: raw["users"][0]["Checks"][1].update(Output="HTTP 200 OK"),
            True,
            id="check-output-change-is-equal",
        ),
        pytest.param(
            lambda raw: raw["users"][0]["Checks"][1].update(Status="critical"),
            False,
            id="health-change",
        ),
        pytest.param(
            lambda raw: raw["users"][0]["Service"].update(Port=15001), False, id="port-change"
        ),
        pytest.param(
            lambda raw: raw["users"][0]["Service"].update(Meta={"x": "y"}),
            False,
            id="meta-change",
        ),
        pytest.param(
            lambda raw: raw["orders"][0]["Service"].update(Tags=["v3"]), False, id="tag-change"
        ),
        pytest.param(
            lambda raw: raw["users"][0]["Service"].update(Weights={"Passing": 3, "Warning": 1}),
            False,
            id="weight-change",
        ),
        pytest.param(
            lambda raw: raw["users"][0]["Service"].update(Weights={"Passing": 1, "Warning": 9}),
            True,
            id="warning-weight-ignored",
        ),
        pytest.param(lambda raw: raw["users"].pop(), False, id="instance-gone"),
        pytest.param(lambda raw: raw.pop("empty"), False, id="service-gone"),
    ],
)
def test_build_snapshot_equality(mutate: Any, same: bool) -> None:
    changed = copy.deepcopy(RAW)
    mutate(changed)
    assert build_snapshot(RAW).same_content(build_snapshot(changed)) is same


# --- weights --------------------------------------------------------------------------------


def _weighted_entry(service_id: str, weights: Any) -> dict[str, Any]:
    entry = consul_entry(service_id)
    entry["Service"]["Weights"] = weights
    return entry


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        pytest.param({"Passing": 5, "Warning": 1}, 5, id="passing"),
        pytest.param({"Passing": 1, "Warning": 1}, 1, id="default"),
        pytest.param({"Warning": 3}, 1, id="no-passing"),
        pytest.param(None, 1, id="no-weights"),
        pytest.param({"Passing": 0}, 1, id="zero-counts-as-one"),
        pytest.param({"Passing": -2}, 1, id="negative"),
        pytest.param({"Passing": "3"}, 1, id="not-a-number"),
        pytest.param({"Passing": True}, 1, id="boolean"),
    ],
)
def test_weight_is_weights_passing(weights: Any, expected: int) -> None:
    instance = entry_to_instance("users", _weighted_entry("users-1", weights))
    assert instance is not None and instance.weight == expected


def test_warning_weight_is_unused_since_a_warning_check_is_unhealthy() -> None:
    entry = _weighted_entry("users-1", {"Passing": 3, "Warning": 7})
    entry["Checks"] = [SERF, _check("warning")]
    instance = entry_to_instance("users", entry)
    assert instance is not None
    assert (instance.healthy, instance.weight) == (False, 3)


def test_service_entry_marks_unequal_weights_on_every_instance() -> None:
    equal = service_entry("users", [_weighted_entry(i, {"Passing": 4}) for i in ("a", "b")])
    assert [(i.weight, i.weighted) for i in equal.instances] == [(4, False), (4, False)]
    unequal = service_entry(
        "users", [_weighted_entry("a", {"Passing": 1}), _weighted_entry("b", {"Passing": 3})]
    )
    assert [(i.weight, i.weighted) for i in unequal.instances] == [(1, True), (3, True)]
    assert all(i.weighted for i in unequal.healthy)


def _located(
    *,
    node_meta: dict[str, str] | None = None,
    meta: dict[str, str] | None = None,
    svc_locality: dict[str, str] | None = None,
    node_locality: dict[str, str] | None = None,
) -> dict[str, Any]:
    entry = consul_entry(meta=meta)
    if node_meta is not None:
        entry["Node"]["Meta"] = {**entry["Node"]["Meta"], **node_meta}
    if svc_locality is not None:
        entry["Service"]["Locality"] = svc_locality
    if node_locality is not None:
        entry["Node"]["Locality"] = node_locality
    return entry


@pytest.mark.parametrize(
    ("entry", "zone", "region"),
    [
        pytest.param(consul_entry(), "", "", id="none-anywhere"),
        pytest.param(
            _located(node_meta={"zone": "a1", "region": "r1"}), "a1", "r1", id="node-meta"
        ),
        pytest.param(
            _located(meta={"meshgate-zone": "b1", "meshgate-region": "r2"}),
            "b1",
            "r2",
            id="service-meta",
        ),
        pytest.param(
            _located(
                node_meta={"zone": "a1", "region": "r1"},
                meta={"meshgate-zone": "b1"},
            ),
            "b1",
            "r1",
            id="service-meta-over-node-meta-each-key-on-its-own",
        ),
        pytest.param(
            _located(
                node_meta={"zone": "a1", "region": "r1"},
                meta={"meshgate-zone": "b1", "meshgate-region": "r2"},
                svc_locality={"Region": "r3", "Zone": "c1"},
            ),
            "c1",
            "r3",
            id="service-locality-first",
        ),
        pytest.param(
            _located(
                node_meta={"zone": "a1", "region": "r1"},
                node_locality={"Region": "r4", "Zone": "d1"},
            ),
            "d1",
            "r4",
            id="node-locality-over-node-meta",
        ),
        pytest.param(
            _located(
                meta={"meshgate-zone": "b1"},
                node_locality={"Region": "r4", "Zone": "d1"},
            ),
            "b1",
            "r4",
            id="service-meta-over-node-locality",
        ),
        pytest.param(
            _located(node_meta={"zone": ""}, svc_locality={"Zone": ""}),
            "",
            "",
            id="empty-values-are-absent",
        ),
    ],
)
def test_zone_and_region(entry: dict[str, Any], zone: str, region: str) -> None:
    instance = entry_to_instance("users", entry)
    assert instance is not None
    assert (instance.zone, instance.region) == (zone, region)


def test_locality_of_a_malformed_answer_is_unknown() -> None:
    entry = _located(node_meta={"zone": "a1"})
    entry["Service"]["Locality"] = {"Zone": 7}
    entry["Node"]["Locality"] = None
    instance = entry_to_instance("users", entry)
    assert instance is not None and instance.zone == "a1" and instance.region == ""
