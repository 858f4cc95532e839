"""A route's ``mirror`` key: defaults, what the route table and ``/routes`` show, and
what is refused, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_edge_config
from edge.gateway import config_routes
from tests.edge.refused_config import assert_refused

ROUTE = "routes: [{prefix: /api/orders, service: orders, mirror: %s}]"


def test_defaults_and_the_route_view(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(ROUTE % "{service: orders-v2}" + "\n")
    (route,) = config_routes(load_edge_config(path))
    assert route.mirror is not None
    assert route.describe()["mirror"] == {
        "service": "orders-v2",
        "percent": 100.0,  # Envoy's and Istio's default: every request
        "max_body_size": 65536,
        "timeout": None,
        "max_in_flight": 100,
    }
    assert "mirror" not in route.options  # routing's own key, not a feature's option


def test_every_key(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    keys = (
        "{service: orders-v2, percent: 2.5, max_body_size: 1MB, timeout: 750ms, max_in_flight: 8}"
    )
    path.write_text(ROUTE % keys + "\n")
    (route,) = config_routes(load_edge_config(path))
    assert route.describe()["mirror"] == {
        "service": "orders-v2",
        "percent": 2.5,
        "max_body_size": 1_000_000,
        "timeout": 0.75,
        "max_in_flight": 8,
    }


def test_a_route_without_mirror_has_none(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("routes: [{prefix: /api/orders, service: orders}]\n")
    (route,) = config_routes(load_edge_config(path))
    assert route.mirror is None
    assert route.describe()["mirror"] is None


@pytest.mark.parametrize(
    ("mirror", "key_path", "problem"),
    [
        ("{percent: 10}", "routes[0].mirror.service", "required key is missing"),
        ("{service: ''}", "routes[0].mirror.service", "at least 1 character"),
        ("{service: v2, percent: 101}", "routes[0].mirror.percent", "less than or equal to 100"),
        ("{service: v2, percent: -1}", "routes[0].mirror.percent", "greater than or equal to 0"),
        ("{service: v2, max_body_size: lots}", "routes[0].mirror.max_body_size", "512KiB"),
        ("{service: v2, max_body_size: 0}", "routes[0].mirror.max_body_size", "at least 1 byte"),
        ("{service: v2, timeout: 0s}", "routes[0].mirror.timeout", "longer than 0"),
        (
            "{service: v2, max_in_flight: 0}",
            "routes[0].mirror.max_in_flight",
            "greater than or equal to 1",
        ),
        ("{service: v2, fraction: 5}", "routes[0].mirror.fraction", "unknown key"),
        ("orders-v2", "routes[0].mirror", "valid dictionary"),
        ("{service: orders}", "routes[0]", "mirror.service: 'orders' is the route's own service"),
    ],
)
def test_refused(tmp_path: Path, mirror: str, key_path: str, problem: str) -> None:
    assert_refused(tmp_path, ROUTE % mirror, key_path, problem)
