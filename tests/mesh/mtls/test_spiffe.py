"""Reading Consul Connect's SPIFFE identities from a peer certificate (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.mtls.spiffe import (
    ServiceIdentity,
    certificate_identity,
    certificate_uris,
    parse_service_uri,
)

DOMAIN = "7226d43c-2ac8-7da3-be96-e3e1234e3ab1.consul"
ORDERS = f"spiffe://{DOMAIN}/ns/default/dc/dc1/svc/orders"


def test_a_consul_service_uri_is_read_and_written_back() -> None:
    identity = parse_service_uri(ORDERS)
    assert identity == ServiceIdentity(DOMAIN, "default", "dc1", "orders")
    assert identity.uri == ORDERS


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param(f"https://{DOMAIN}/ns/default/dc/dc1/svc/orders", id="another-scheme"),
        pytest.param(f"spiffe://{DOMAIN}/ns/default/dc/dc1/agent/orders", id="an-agent-not-a-svc"),
        pytest.param(f"spiffe://{DOMAIN}/ns/default/dc/dc1/svc/orders/x", id="longer-path"),
        pytest.param(f"spiffe://{DOMAIN}/ns/default/dc/dc1/svc/", id="empty-service"),
        pytest.param(f"spiffe://{DOMAIN}/ns//dc/dc1/svc/orders", id="empty-namespace"),
        pytest.param("spiffe:///ns/default/dc/dc1/svc/orders", id="empty-trust-domain"),
        pytest.param(f"spiffe://{DOMAIN}", id="no-path"),
        pytest.param(f"spiffe://{DOMAIN}/dc/dc1/ns/default/svc/orders", id="parts-out-of-order"),
        pytest.param("", id="empty"),
    ],
)
def test_anything_else_is_no_service(uri: str) -> None:
    assert parse_service_uri(uri) is None


def cert(*names: tuple[str, str]) -> dict[str, Any]:
    """A certificate as ``SSLObject.getpeercert()`` returns it."""
    return {"subject": ((("commonName", "x"),),), "subjectAltName": names}


def test_only_uri_names_are_read() -> None:
    peer = cert(("DNS", "orders.example"), ("URI", ORDERS), ("IP Address", "10.0.0.1"))
    assert certificate_uris(peer) == (ORDERS,)
    assert certificate_uris(None) == ()
    assert certificate_uris({}) == ()
    assert certificate_uris({"subject": ()}) == ()


def test_the_identity_must_be_in_the_trust_domain() -> None:
    assert certificate_identity(cert(("URI", ORDERS)), DOMAIN) == parse_service_uri(ORDERS)
    assert certificate_identity(cert(("URI", ORDERS)), "other.consul") is None


def test_a_certificate_naming_two_services_names_none() -> None:
    users = ORDERS.replace("/svc/orders", "/svc/users")
    assert certificate_identity(cert(("URI", ORDERS), ("URI", users)), DOMAIN) is None


def test_a_certificate_naming_one_service_among_other_uris_names_it() -> None:
    peer = cert(("URI", "https://example.com/"), ("URI", ORDERS))
    identity = certificate_identity(peer, DOMAIN)
    assert identity is not None and identity.service == "orders"


def test_no_certificate_names_no_service() -> None:
    assert certificate_identity(None, DOMAIN) is None
    assert certificate_identity(cert(("DNS", "orders")), DOMAIN) is None
