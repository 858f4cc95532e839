"""A route's ``retries`` key: defaults, every key, what the route table and ``/routes``
show, that a reload builds a fresh budget, and what is refused, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_edge_config
from edge.gateway import config_routes
from tests.edge.refused_config import assert_refused

ROUTE = "routes: [{prefix: /api/orders, service: orders, retries: %s}]"


def test_defaults_are_the_sidecars_and_envoys(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(ROUTE % "{}" + "\n")
    (route,) = config_routes(load_edge_config(path))
    assert route.retries is not None
    assert route.describe()["retries"] == {
        "max_attempts": 3,
        "retry_on": ["connect-failure", "reset", "timeout", 502, 503, 504],
        "per_try_timeout": None,  # Envoy's: what is left of the route's timeout
        "backoff_base": 0.025,
        "backoff_max": 0.25,
        "replay_limit": 65536,
        "budget": {"ratio": 0.2, "min_per_second": 10.0, "window": 10.0, "available": 100},
        "attempts_header": True,
    }
    assert "retries" not in route.options  # routing's own key, not a feature's option


def test_every_key(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    keys = (
        "{max_attempts: 5, retry_on: [connect-failure, '500', 503], per_try_timeout: 750ms,"
        " backoff_base: 10ms, backoff_max: 1s, replay_limit: 1KiB, budget_ratio: 0.5,"
        " budget_min_per_second: 1, budget_window: 5s, attempts_header: false}"
    )
    path.write_text(ROUTE % keys + "\n")
    (route,) = config_routes(load_edge_config(path))
    assert route.retries is not None
    assert route.retries.conditions == {"connect-failure"}
    assert route.retries.statuses == {500, 503}  # a quoted status is a status
    assert route.describe()["retries"] == {
        "max_attempts": 5,
        "retry_on": ["connect-failure", 500, 503],
        "per_try_timeout": 0.75,
        "backoff_base": 0.01,
        "backoff_max": 1.0,
        "replay_limit": 1024,
        "budget": {"ratio": 0.5, "min_per_second": 1.0, "window": 5.0, "available": 5},
        "attempts_header": False,
    }


def test_a_route_without_retries_has_none(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("routes: [{prefix: /api/orders, service: orders}]\n")
    (route,) = config_routes(load_edge_config(path))
    assert route.retries is None
    assert route.describe()["retries"] is None


def test_each_build_of_the_routes_has_its_own_budget(tmp_path: Path) -> None:
    """A reload builds the routes again: their budgets start afresh, as the sidecar's do."""
    path = tmp_path / "edge.yaml"
    path.write_text(ROUTE % "{}" + "\n")
    config = load_edge_config(path)
    (first,) = config_routes(config)
    (again,) = config_routes(config)
    assert first.retries is not None and again.retries is not None
    assert first.retries.budget is not again.retries.budget


@pytest.mark.parametrize(
    ("retries", "key_path", "problem"),
    [
        ("{max_attempts: 0}", "routes[0].retries.max_attempts", "greater than or equal to 1"),
        ("{max_attempts: 11}", "routes[0].retries.max_attempts", "less than or equal to 10"),
        ("{retry_on: []}", "routes[0].retries.retry_on", "at least 1 item"),
        ("{retry_on: [5xx]}", "routes[0].retries.retry_on", "unknown condition '5xx'"),
        ("{retry_on: [429]}", "routes[0].retries.retry_on", "only 5xx statuses"),
        ("{per_try_timeout: 0s}", "routes[0].retries.per_try_timeout", "longer than 0"),
        ("{backoff_base: -1}", "routes[0].retries.backoff_base", "cannot be negative"),
        ("{budget_ratio: -0.1}", "routes[0].retries.budget_ratio", "greater than or equal to 0"),
        ("{budget_window: 0s}", "routes[0].retries.budget_window", "longer than 0"),
        ("{attempts: 3}", "routes[0].retries.attempts", "unknown key"),
        ("3", "routes[0].retries", "valid dictionary"),
    ],
)
def test_refused(tmp_path: Path, retries: str, key_path: str, problem: str) -> None:
    assert_refused(tmp_path, ROUTE % retries, key_path, problem)
