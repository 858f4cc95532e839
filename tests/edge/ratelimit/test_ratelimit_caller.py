"""Reading the caller from the auth feature's identity (edge/ratelimit/caller.py)."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace

from edge.auth.claims import Claims
from edge.ratelimit.caller import ANONYMOUS, ANONYMOUS_ROLE, caller_of


def test_no_identity_is_the_anonymous_caller() -> None:
    assert caller_of(None) is ANONYMOUS
    assert not ANONYMOUS.authenticated
    assert ANONYMOUS.roles == (ANONYMOUS_ROLE,)
    assert ANONYMOUS.subject is None and ANONYMOUS.consumer is None


def test_a_token_identity() -> None:
    identity = SimpleNamespace(
        method="jwt",
        subject="alice",
        roles=("user", "beta"),
        consumer="reporting",  # a machine client's client_id: not an API key
        plan=None,
        claims=MappingProxyType({"org": "acme"}),
    )
    caller = caller_of(identity)
    assert caller.authenticated and caller.method == "jwt"
    assert (caller.subject, caller.roles) == ("alice", ("user", "beta"))
    assert caller.consumer is None
    assert caller.claims["org"] == "acme"


def test_an_api_key_identity() -> None:
    identity = SimpleNamespace(
        method="apikey", subject="acme-app", roles=["partner"], consumer="acme-app", plan="pro"
    )
    caller = caller_of(identity)
    assert (caller.consumer, caller.plan, caller.roles) == ("acme-app", "pro", ("partner",))
    assert caller.subject is None  # counted by api_key policies, not by user ones
    assert dict(caller.claims) == {}


def test_missing_or_malformed_attributes_read_as_absent() -> None:
    caller = caller_of(SimpleNamespace(subject="", roles="admin", plan=7))
    assert caller.authenticated
    assert caller.subject is None and caller.plan is None
    assert caller.roles == ()  # a string is not a list of roles
    assert caller.method == "unknown"


def test_the_auth_packages_claims_can_stand_in() -> None:
    claims = Claims(subject="bob", roles=("admin",), raw=MappingProxyType({"sub": "bob"}))
    caller = caller_of(claims)
    assert (caller.subject, caller.roles, caller.claims["sub"]) == ("bob", ("admin",), "bob")
