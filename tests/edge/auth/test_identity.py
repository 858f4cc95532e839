"""Identities and the claim-to-header map."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from edge.auth.apikeys import ApiKeyRecord
from edge.auth.claims import Claims
from edge.auth.config import DEFAULT_CLAIM_HEADERS
from edge.auth.identity import (
    IdentityHeaders,
    header_value,
    identity_from_api_key,
    identity_from_claims,
)


def test_identity_from_claims_and_default_headers() -> None:
    claims = Claims(
        subject="alice",
        roles=("user", "admin"),
        email="alice@example.com",
        raw=MappingProxyType({"sub": "alice", "tenant": "acme", "level": 3}),
    )
    identity = identity_from_claims(claims, "jwt")
    assert identity.has_any_role(["admin", "ops"]) and not identity.has_any_role(["ops"])
    assert IdentityHeaders(DEFAULT_CLAIM_HEADERS).render(identity) == (
        ("X-User-Id", "alice"),
        ("X-User-Roles", "user,admin"),
        ("X-User-Email", "alice@example.com"),
        ("X-Auth-Method", "jwt"),
    )
    custom = IdentityHeaders({"X-Tenant": "tenant", "X-Level": "level", "X-Missing": "nope"})
    assert custom.render(identity) == (("X-Tenant", "acme"), ("X-Level", "3"))


def test_the_verifying_provider_is_a_header() -> None:
    claims = Claims(subject="carol", provider="staff", raw=MappingProxyType({"provider": "x"}))
    identity = identity_from_claims(claims, "jwt")
    assert identity.provider == "staff"
    # From the verification, never from a claim of that name in the token.
    assert dict(IdentityHeaders(DEFAULT_CLAIM_HEADERS).render(identity)) == {
        "X-User-Id": "carol",
        "X-Auth-Method": "jwt",
        "X-Auth-Provider": "staff",
    }


def test_machine_client_token_sets_the_consumer() -> None:
    claims = Claims(subject="reporting", client_id="reporting", roles=("service",))
    identity = identity_from_claims(claims, "introspect")
    rendered = dict(IdentityHeaders(DEFAULT_CLAIM_HEADERS).render(identity))
    assert rendered["X-Consumer-Id"] == "reporting"
    assert rendered["X-Auth-Method"] == "introspect"


def test_api_key_identity() -> None:
    identity = identity_from_api_key(ApiKeyRecord("0123456789ab", "acme", ("partner",), "gold", 0))
    headers = IdentityHeaders({**DEFAULT_CLAIM_HEADERS, "X-Plan": "plan"}).render(identity)
    assert headers == (
        ("X-User-Id", "acme"),
        ("X-User-Roles", "partner"),
        ("X-Consumer-Id", "acme"),
        ("X-Auth-Method", "apikey"),
        ("X-Plan", "gold"),
    )
    assert identity.key_id == "0123456789ab"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "alice"),
        (7, "7"),
        (True, "true"),
        (["a", "b"], "a,b"),
        ([], None),
        ("", None),
        (None, None),
        ({"nested": 1}, None),
        (["a,b"], None),
        ("line\r\nX-Evil: 1", None),
        ("x" * 1025, None),
        ("josé", "jos%C3%A9"),
        ("100%", "100%"),
    ],
)
def test_header_values(value: object, expected: str | None) -> None:
    assert header_value(value) == expected
