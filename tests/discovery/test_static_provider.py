"""The static catalog file → Snapshot (pure part of the static provider)."""

from __future__ import annotations

from typing import Any

import pytest

from discovery.static_provider import StaticCatalog, catalog_to_snapshot
from mesh.config.errors import ConfigError
from mesh.config.loader import parse_config
from mesh.snapshot import Instance, ServiceEntry


def _catalog(services: dict[str, list[dict[str, Any]]]) -> StaticCatalog:
    return StaticCatalog.model_validate({"services": services})


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        pytest.param({}, {}, id="empty"),
        pytest.param(
            {"users": [{"address": "127.0.0.1", "port": 9001}]},
            {"users": (Instance("users-127.0.0.1-9001", "users", "127.0.0.1", 9001),)},
            id="default-id",
        ),
        pytest.param(
            {
                "users": [
                    {
                        "address": "127.0.0.1",
                        "port": 9001,
                        "id": "users-1",
                        "tags": ["v1"],
                        "meta": {"z": "1", "meshgate-route": "/api/users"},
                    }
                ]
            },
            {
                "users": (
                    Instance(
                        "users-1",
                        "users",
                        "127.0.0.1",
                        9001,
                        tags=("v1",),
                        meta=(("meshgate-route", "/api/users"), ("z", "1")),
                    ),
                )
            },
            id="id-tags-meta-sorted",
        ),
        pytest.param(
            {
                "users": [
                    {"address": "10.0.0.2", "port": 80, "id": "u-b"},
                    {"address": "10.0.0.1", "port": 80, "id": "u-a", "healthy": False},
                ]
            },
            {
                "users": (
                    Instance("u-a", "users", "10.0.0.1", 80, healthy=False),
                    Instance("u-b", "users", "10.0.0.2", 80),
                )
            },
            id="sorted-by-id-with-health",
        ),
        pytest.param(
            {"users": []},
            {"users": ()},
            id="service-without-instances",
        ),
    ],
)
def test_catalog_to_snapshot(
    services: dict[str, list[dict[str, Any]]], expected: dict[str, tuple[Instance, ...]]
) -> None:
    snap = catalog_to_snapshot(_catalog(services))
    assert snap.source == "static"
    assert dict(snap.services) == {
        name: ServiceEntry(name, instances) for name, instances in expected.items()
    }


def test_services_are_in_name_order() -> None:
    snap = catalog_to_snapshot(
        _catalog({"zeta": [], "alpha": [], "mid": [{"address": "h", "port": 1}]})
    )
    assert list(snap.services) == ["alpha", "mid", "zeta"]


def test_equal_catalogs_give_equal_snapshots() -> None:
    a = _catalog({"users": [{"address": "h", "port": 1, "id": "x"}, {"address": "h", "port": 2}]})
    b = _catalog({"users": [{"address": "h", "port": 2}, {"address": "h", "port": 1, "id": "x"}]})
    assert catalog_to_snapshot(a).same_content(catalog_to_snapshot(b))
    c = _catalog({"users": [{"address": "h", "port": 3}]})
    assert not catalog_to_snapshot(a).same_content(catalog_to_snapshot(c))


STATIC_YAML = """
services:
  users:
    - address: 127.0.0.1
      port: 9001
      id: users-1
      tags: [v1]
      meta: {meshgate-route: /api/users}
      zone: eu-west-1a
      region: eu-west-1
    - address: 127.0.0.1
      port: ${USERS_2_PORT:-9002}
  orders:
    - {address: 127.0.0.1, port: 9101, healthy: false}
"""


def test_file_format_from_the_docstring() -> None:
    snap = catalog_to_snapshot(parse_config(STATIC_YAML, StaticCatalog, env={}))
    users = snap.service("users")
    orders = snap.service("orders")
    assert users is not None and orders is not None
    assert [(i.id, i.port) for i in users.instances] == [
        ("users-1", 9001),
        ("users-127.0.0.1-9002", 9002),
    ]
    assert users.instances[0].meta_dict() == {"meshgate-route": "/api/users"}
    assert users.instances[0].tags == ("v1",)
    assert (users.instances[0].zone, users.instances[0].region) == ("eu-west-1a", "eu-west-1")
    assert (users.instances[1].zone, users.instances[1].region) == ("", "")
    assert [i.id for i in users.healthy] == ["users-1", "users-127.0.0.1-9002"]
    assert orders.healthy == ()


@pytest.mark.parametrize(
    ("text", "key_path", "problem_part"),
    [
        pytest.param(
            "services:\n  users:\n    - address: h\n      prot: 1",
            "services.users[0].port",
            "required key is missing",
            id="missing-port",
        ),
        pytest.param(
            "services:\n  users:\n    - address: h\n      port: 1\n      priority: 3",
            "services.users[0].priority",
            "unknown key",
            id="unknown-key",
        ),
        pytest.param(
            "services:\n  users:\n    - address: h\n      port: 1\n      weight: 0",
            "services.users[0].weight",
            "greater than or equal to 1",
            id="weight-below-1",
        ),
        pytest.param(
            "services:\n  users:\n    - address: h\n      port: 99999",
            "services.users[0].port",
            "65535",
            id="port-range",
        ),
        pytest.param("servics: {}", "servics", "unknown key", id="unknown-top-level"),
    ],
)
def test_invalid_catalog_file(text: str, key_path: str, problem_part: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, StaticCatalog, file="catalog.yaml", env={})
    assert info.value.key_path == key_path
    assert problem_part in info.value.problem
