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


def test_known_answers_for_resolved_routes_only() -> None:
    policies = RoutePolicies(CONFIG)
    r = route({"methods": ["apikey"]})
    assert policies.known(id(r)) is None
    policy = policies.for_route(r)
    assert policies.known(id(r)) is policy
    assert policies.known(id(route({"methods": ["apikey"]}))) is None  # another route object


@pytest.mark.parametrize(
    ("policy", "enforced", "local_jwt", "api_keys"),
    [
        (RoutePolicy("required", frozenset({"jwt", "apikey"}), (), "jwt"), True, True, True),
        (RoutePolicy("optional", frozenset({"jwt"}), (), "jwt"), True, True, False),
        (RoutePolicy("required", frozenset({"jwt"}), (), "introspect"), True, False, False),
        (RoutePolicy("required", frozenset({"apikey"}), ("a",), "jwt"), True, False, True),
        (RoutePolicy("none", frozenset(), (), "jwt"), False, False, False),
    ],
)
def test_derived_flags(
    policy: RoutePolicy, enforced: bool, local_jwt: bool, api_keys: bool
) -> None:
    assert (policy.enforced, policy.local_jwt, policy.api_keys) == (enforced, local_jwt, api_keys)


def test_derived_flags_take_no_part_in_equality_or_repr() -> None:
    policy = RoutePolicy("required", frozenset({"jwt"}), (), "jwt")
    assert policy == RoutePolicy("required", frozenset({"jwt"}), (), "jwt")
    assert "local_jwt" not in repr(policy)


def test_a_route_the_config_cannot_serve_is_an_error() -> None:
    policies = RoutePolicies(AuthConfig())
    with pytest.raises(ValueError, match="needs an authentication method"):
        policies.for_route(route("required"))
