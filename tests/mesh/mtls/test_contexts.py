"""Mesh TLS contexts: real handshakes over memory BIOs (no sockets), a test Connect CA."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from mesh.mtls.contexts import MeshTls
from mesh.mtls.material import Leaf, MaterialError, Roots
from mesh.snapshot import Instance
from mesh.transport.base import UpstreamConnectError
from tests.mesh.mtls.connect_ca import ConnectCa


def ready(ca: ConnectCa, service: str, *also_trusted: ConnectCa, **options: Any) -> MeshTls:
    mesh_tls = MeshTls(service, require=options.pop("require", False), **options)
    mesh_tls.update(Leaf.from_consul(ca.leaf(service)), Roots.from_consul(ca.roots(*also_trusted)))
    return mesh_tls


def handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> dict[str, Any]:
    """A whole TLS handshake between the two contexts, over memory; the server's
    certificate as the client sees it. Raises ssl.SSLError when either side refuses."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(to_client, to_server, server_side=False)
    s = server.wrap_bio(to_server, to_client, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", c), ("server", s)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            # TLS 1.3: the server checks the client's certificate after the client
            # is done; a refusal reaches the client with its first read.
            c.write(b"x")
            s.read()
            peer = c.getpeercert()
            assert peer is not None
            return peer
    raise AssertionError("the handshake did not finish")


def instance(service: str, *, mesh_tls: bool = True) -> Instance:
    return Instance(
        id=f"{service}-1", service=service, address="10.0.0.1", port=1, mesh_tls=mesh_tls
    )


def client_of(mesh_tls: MeshTls, service: str) -> ssl.SSLContext:
    upstream = mesh_tls.for_instance(instance(service))
    assert upstream is not None
    return upstream.context


def test_two_services_of_one_ca_complete_a_mutual_handshake() -> None:
    ca = ConnectCa()
    web, orders = ready(ca, "web"), ready(ca, "orders")
    peer = handshake(client_of(web, "orders"), orders.server.context)
    upstream = web.for_instance(instance("orders"))
    assert upstream is not None
    assert upstream.refusal(peer) is None
    # The same certificate, checked for a service it does not name.
    payments = web.for_instance(instance("payments"))
    assert payments is not None
    assert payments.refusal(peer) == "its certificate is 'orders''s, not 'payments''s"
    assert payments.key != upstream.key


def test_the_server_refuses_a_client_without_a_certificate() -> None:
    ca = ConnectCa()
    orders = ready(ca, "orders")
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cadata=Roots.from_consul(ca.roots()).pems[0])
    with pytest.raises(ssl.SSLError):
        handshake(anonymous, orders.server.context)


def test_certificates_of_another_ca_are_refused_both_ways() -> None:
    ours, theirs = ConnectCa(), ConnectCa(name="Other CA")
    orders, intruder = ready(ours, "orders"), ready(theirs, "web")
    with pytest.raises(ssl.SSLError):
        handshake(client_of(intruder, "orders"), orders.server.context)
    with pytest.raises(ssl.SSLError):
        handshake(client_of(orders, "web"), intruder.server.context)


def test_a_certificate_of_another_trust_domain_names_no_service() -> None:
    ca = ConnectCa()
    web = ready(ca, "web")
    stranger = ready(ca, "orders")
    stranger.update(
        leaf=Leaf.from_consul(
            ca.leaf("orders", uris=("spiffe://elsewhere.consul/ns/default/dc/dc1/svc/orders",))
        )
    )
    peer = handshake(client_of(web, "orders"), stranger.server.context)
    upstream = web.for_instance(instance("orders"))
    assert upstream is not None
    assert (
        upstream.refusal(peer)
        == f"its certificate names no service of trust domain {ca.trust_domain}"
    )


def test_a_renewed_certificate_and_rotated_roots_serve_new_handshakes() -> None:
    old, new = ConnectCa(name="Old CA"), ConnectCa(name="New CA")
    replaced: list[str] = []
    orders = ready(old, "orders", on_replace=replaced.append)
    listener = orders.server.context  # what a listener keeps for good
    web_old = ready(old, "web")
    before = handshake(client_of(web_old, "orders"), listener)

    # Consul rotates: the new root is trusted alongside the old, the certificate re-signed.
    orders.update(Leaf.from_consul(new.leaf("orders")), Roots.from_consul(new.roots(old)))
    assert replaced == ["certificate", "roots"]
    assert orders.updates == {"certificate": 1, "roots": 1}
    web_new = ready(new, "web", old)
    after = handshake(client_of(web_new, "orders"), listener)
    assert dict(x[0] for x in after["issuer"])["commonName"] == "New CA"
    assert dict(x[0] for x in before["issuer"])["commonName"] == "Old CA"
    # A client still holding a certificate of the old CA (its roots updated) is still
    # served: the old root stays trusted through the rotation ...
    handshake(client_of(ready(old, "web", new), "orders"), listener)
    # ... but a client trusting only the old root refuses the re-signed server.
    with pytest.raises(ssl.SSLError):
        handshake(client_of(web_old, "orders"), listener)


def test_an_unusable_certificate_changes_nothing() -> None:
    ca = ConnectCa()
    orders = ready(ca, "orders")
    serial = orders.leaf.serial if orders.leaf else None
    bad = ca.leaf("orders")
    bad["PrivateKeyPEM"] = ca.leaf("orders")["PrivateKeyPEM"]  # a key of another certificate
    with pytest.raises(MaterialError, match="cannot load orders's certificate"):
        orders.update(leaf=Leaf.from_consul(bad))
    assert orders.leaf is not None and orders.leaf.serial == serial
    assert orders.updates == {"certificate": 0, "roots": 0}
    handshake(client_of(ready(ca, "web"), "orders"), orders.server.context)


@pytest.mark.parametrize(
    ("field", "value"),
    [("CertPEM", None), ("ValidBefore", "not a time"), ("Service", None)],
)
def test_a_leaf_answer_missing_a_field_is_refused(field: str, value: Any) -> None:
    raw = ConnectCa().leaf("orders")
    if value is None:
        del raw[field]
    else:
        raw[field] = value
    with pytest.raises(MaterialError, match="unusable leaf certificate answer"):
        Leaf.from_consul(raw)


def test_roots_without_a_root_are_refused() -> None:
    with pytest.raises(MaterialError, match="no trust domain or no root"):
        Roots.from_consul({"TrustDomain": "x.consul", "Roots": []})
    with pytest.raises(MaterialError):
        Roots.from_consul({"Roots": ConnectCa().roots()["Roots"]})


def test_before_the_first_certificate_only_plain_instances_are_reached() -> None:
    mesh_tls = MeshTls("web", require=False)
    assert mesh_tls.for_instance(instance("users", mesh_tls=False)) is None
    with pytest.raises(UpstreamConnectError, match="no certificate from Consul"):
        mesh_tls.for_instance(instance("users"))
    # One half alone is not enough.
    mesh_tls.update(roots=Roots.from_consul(ConnectCa().roots()))
    assert not mesh_tls.ready.is_set()


def test_require_refuses_plain_instances() -> None:
    mesh_tls = ready(ConnectCa(), "web", require=True)
    with pytest.raises(UpstreamConnectError, match="not registered for mesh TLS"):
        mesh_tls.for_instance(instance("users", mesh_tls=False))
    assert mesh_tls.for_instance(instance("users")) is not None


def test_the_view_shows_the_certificate_never_the_key() -> None:
    ca = ConnectCa()
    mesh_tls = ready(ca, "web")
    view = mesh_tls.view()
    assert view["certificate"] == {
        "uri": f"spiffe://{ca.trust_domain}/ns/default/dc/dc1/svc/web",
        "serial": mesh_tls.leaf.serial if mesh_tls.leaf else None,
        "valid_before": mesh_tls.leaf.valid_before if mesh_tls.leaf else None,
    }
    assert "PRIVATE KEY" not in repr(view)


def test_the_same_answer_again_changes_nothing() -> None:
    """A blocking query whose wait ran out answers with what it answered before."""
    ca = ConnectCa()
    raw_leaf, raw_roots = ca.leaf("orders"), ca.roots()
    replaced: list[str] = []
    orders = MeshTls("orders", require=False, on_replace=replaced.append)
    orders.update(Leaf.from_consul(raw_leaf), Roots.from_consul(raw_roots))
    web = orders.for_instance(instance("web"))
    orders.update(Leaf.from_consul(raw_leaf))
    orders.update(roots=Roots.from_consul(raw_roots))
    assert replaced == []
    assert orders.for_instance(instance("web")) is web  # nothing rebuilt
