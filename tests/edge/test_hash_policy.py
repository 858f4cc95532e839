"""A route's ``hash_policy`` in the edge config: read into the route, or refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_edge_config
from edge.gateway import config_routes
from mesh.hash_policy import HashPolicy, HashSource
from tests.edge.refused_config import assert_refused


def _route_with(policy: str) -> str:
    second = f"{{prefix: /b, service: b, hash_policy: {policy}}}"
    return f"routes:\n  - {{prefix: /a, service: a}}\n  - {second}"


def test_a_routes_hash_policy_is_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    policy = "[{header: X-User-Id}, {cookie: session}, {query: cart}, {source_ip: true}]"
    path.write_text(_route_with(policy) + "\n")
    routes = config_routes(load_edge_config(path))
    assert routes[0].hash_policy is None
    assert routes[1].hash_policy == HashPolicy(
        (
            HashSource("header", "X-User-Id"),
            HashSource("cookie", "session"),
            HashSource("query", "cart"),
            HashSource("source_ip"),
        )
    )
    assert "hash_policy" not in routes[1].options  # routing's, not a feature's


@pytest.mark.parametrize(
    ("policy", "key", "problem"),
    [
        pytest.param(
            "[{header: X-A, cookie: s}]",
            "routes[1].hash_policy[0]",
            "exactly one of header, cookie, query and source_ip: true (found header and cookie)",
            id="two-sources-in-one",
        ),
        pytest.param("[{}]", "routes[1].hash_policy[0]", "(found none)", id="none"),
        pytest.param(
            "[{source_ip: false}]", "routes[1].hash_policy[0]", "(found none)", id="source-ip-false"
        ),
        pytest.param("[]", "routes[1].hash_policy", "at least 1", id="empty-list"),
        pytest.param(
            "[{header: 'X A'}]",
            "routes[1].hash_policy[0].header",
            "'X A' is not a valid header name",
            id="bad-header",
        ),
        pytest.param("[{body: x}]", "routes[1].hash_policy[0].body", "unknown key", id="unknown"),
        pytest.param("{header: X-A}", "routes[1].hash_policy", "valid tuple", id="not-a-list"),
    ],
)
def test_a_bad_hash_policy_is_refused_naming_the_key(
    tmp_path: Path, policy: str, key: str, problem: str
) -> None:
    assert_refused(tmp_path, _route_with(policy), key, problem)
