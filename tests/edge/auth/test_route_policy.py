"""Per-route policy resolution: defaults filled in once per route."""

from __future__ import annotations

from typing import Any

import pytest

from edge.auth.config import AuthConfig
from edge.auth.policy import RoutePolicies, RoutePolicy
from edge.routes import make_route

CONFIG = AuthConfig.model_validate(
    {
        "issuer": "i",
        "audience": "a",
        "jwks": {"service": "auth"},
        "introspection": {"service": "auth"},
        "api_keys": {"redis_url": "redis://127.0.0.1:6379/0"},
    }
)


def route(auth: Any = None) -> Any:
    options = {"auth": auth} if auth is not None else {}
    return make_route(prefix="/a", service="a", source="config", options=options)


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (None, RoutePolicy("required", frozenset({"jwt", "apikey"}), (), "jwt")),
        ("none", RoutePolicy("none", frozenset({"jwt", "apikey"}), (), "jwt")),
        (
            {"policy": "optional", "methods": ["apikey"]},
            RoutePolicy("optional", frozenset({"apikey"}), (), "jwt"),
        ),
        (
            {"roles": ["admin", "ops"], "mode": "introspect"},
            RoutePolicy("required", frozenset({"jwt", "apikey"}), ("admin", "ops"), "introspect"),
        ),
    ],
)
def test_resolution(auth: Any, expected: RoutePolicy) -> None:
    assert RoutePolicies(CONFIG).for_route(route(auth)) == expected


def test_no_route_gets_the_default_and_resolution_is_remembered_per_route() -> None:
    policies = RoutePolicies(CONFIG)
    assert policies.for_route(None) is policies.default
    r = route({"roles": ["admin"]})
    first = policies.for_route(r)
    assert policies.for_route(r) is first
    assert not RoutePolicy("none", frozenset(), (), "jwt").enforced


def test_a_route_the_config_cannot_serve_is_an_error() -> None:
    policies = RoutePolicies(AuthConfig())
    with pytest.raises(ValueError, match="needs an authentication method"):
        policies.for_route(route("required"))
