"""Mesh TLS on Consul Connect: real Consul (Connect CA on, as in ``-dev``), edges, sidecars, apps.

What is shown: the edge reaches a sidecar over mutual TLS with its own
certificate; sidecars call each other the same way; the sidecar's inbound
listener takes no client without a certificate from the CA; intentions
created in Consul refuse a caller (403) and, deleted, let it in again; a
certificate naming another service than the one called is refused before
anything is sent; and Consul's checks still see the app's health.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from demo.processes import free_port, wait_until
from tests.integration.harness import (
    Mesh,
    consul_api,
    descendants,
    hang_up,
    http,
    metrics,
    passing_ids,
    rewrite,
)

MESH_TLS = {"mesh_tls": {"enabled": True}}
ROUTES = [
    {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"},
    {"prefix": "/api/orders", "service": "orders", "prefix_rewrite": "/orders"},
    {"prefix": "/api/payments", "service": "payments", "prefix_rewrite": "/users"},
]


def create_intention(mesh: Mesh, source: str, destination: str, action: str) -> str:
    created = consul_api(
        mesh.consul,
        "POST",
        "/v1/connect/intentions",
        {"SourceName": source, "DestinationName": destination, "Action": action},
    )
    return str(created["ID"])


def leaf(mesh: Mesh, service: str) -> dict[str, Any]:
    """A certificate and key for ``service`` from Consul's Connect CA, as any client
    of the agent may ask for (with ACLs off)."""
    answer = consul_api(mesh.consul, "GET", f"/v1/agent/connect/ca/leaf/{service}")
    assert isinstance(answer, dict)
    return answer


def client_context(mesh: Mesh, tmp_path: Path, service: str | None) -> ssl.SSLContext:
    """A client context trusting the CA, presenting ``service``'s certificate (None:
    presenting none)."""
    roots = consul_api(mesh.consul, "GET", "/v1/agent/connect/ca/roots")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata="\n".join(r["RootCert"] for r in roots["Roots"]))
    if service is not None:
        cert = leaf(mesh, service)
        (tmp_path / f"{service}.pem").write_text(cert["CertPEM"])
        (tmp_path / f"{service}.key").write_text(cert["PrivateKeyPEM"])
        context.load_cert_chain(tmp_path / f"{service}.pem", tmp_path / f"{service}.key")
    return context


def https_get(
    port: int, path: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for_status(url: str, status: int, within: float = 10) -> tuple[int, Any]:
    """GET ``url`` until it answers ``status``; the last answer."""
    last: tuple[int, Any] = (0, None)

    def answered() -> bool:
        nonlocal last
        code, _, body = http(url)
        last = (code, json.loads(body))
        return code == status

    try:
        wait_until(answered, within, f"{url} answering {status}")
    except TimeoutError:
        raise AssertionError(f"{url} still answers {last}") from None
    return last


def test_edge_to_sidecar_and_sidecar_to_sidecar_over_mesh_tls(mesh: Mesh) -> None:
    mesh.sidecar(mesh.app("inventory"), "inventory-1", extra=MESH_TLS)
    orders = mesh.sidecar(mesh.app("orders"), "orders-1", extra=MESH_TLS)
    edge = mesh.edge(ROUTES, extra=MESH_TLS)

    # Registered as Connect-native, and healthy: Consul's check reaches the app
    # through the admin listener, since the inbound one needs a certificate.
    service = consul_api(mesh.consul, "GET", "/v1/health/service/orders")[0]["Service"]
    assert service["Connect"] == {"Native": True}
    assert "orders-1" in passing_ids(mesh.consul, "orders")
    checks = consul_api(mesh.consul, "GET", "/v1/health/checks/orders")
    assert [c["Status"] for c in checks] == ["passing"]
    assert f"127.0.0.1:{orders.admin}/health/app" in checks[0]["Output"]

    # edge → orders' sidecar (mesh TLS) → orders → orders' sidecar outbound →
    # inventory's sidecar (mesh TLS) → inventory.
    status, _, body = http(f"{edge.url}/api/orders/7")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["order"] == "7" and answer["stock"]["instance"].startswith("inventory")

    # Both hops were TLS with the CA's certificates (the admin views say whose).
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/mesh-tls", timeout=5) as resp:
        view = json.loads(resp.read())
    assert view["ready"] is True
    assert view["certificate"]["uri"].endswith("/svc/meshgate-edge")
    samples = metrics(edge.admin)
    assert samples["meshgate_mesh_tls_ready"] == [({"role": "edge"}, 1.0)]
    ((_, expiry),) = samples["meshgate_mesh_tls_certificate_expiry_timestamp_seconds"]
    assert expiry > time.time() + 3600


def test_the_inbound_listener_takes_only_clients_with_a_mesh_certificate(
    mesh: Mesh, tmp_path: Path
) -> None:
    users_app = mesh.app("users")
    users = mesh.sidecar(users_app, "users-1", extra=MESH_TLS)

    # Plain HTTP: told why, in HTTP (mesh_tls.mode strict, the default); never served.
    status, _, body = http(f"http://127.0.0.1:{users.inbound}/users/echo")
    assert status == 403
    assert json.loads(body)["type"].endswith("/mesh-tls-required")
    # TLS without a client certificate: the handshake is refused.
    with pytest.raises(OSError):  # ssl.SSLError and URLError are OSErrors
        https_get(users.inbound, "/users/echo", client_context(mesh, tmp_path, None))
    # With one from the Connect CA, for any service (no intention, default allow): served.
    spoofed = {"X-Forwarded-Client-Cert": "URI=spiffe://x/ns/default/dc/dc1/svc/admin"}
    web = client_context(mesh, tmp_path, "web")
    status, body = https_get(users.inbound, "/users/echo", web, spoofed)
    assert status == 200 and body["service"] == "users"
    assert users_app.stats()["total"] == 1
    # The app is told who called, in Envoy's X-Forwarded-Client-Cert form; the
    # caller's own copy of the header never reaches it.
    seen = [v for k, v in body["headers"] if k.lower() == "x-forwarded-client-cert"]
    domain = consul_api(mesh.consul, "GET", "/v1/agent/connect/ca/roots")["TrustDomain"]
    svc = f"spiffe://{domain}/ns/default/dc/dc1/svc"
    assert seen == [f"By={svc}/users;URI={svc}/web"]
    # What each connection became, and the plain request refused, are counted.
    samples = metrics(users.admin)
    connections = {
        labels["outcome"]: value
        for labels, value in samples["meshgate_mesh_tls_inbound_connections_total"]
    }
    connections.pop("no_data", None)  # the harness's probes of the port, if any
    assert connections == {"plaintext": 1.0, "tls_refused": 1.0, "tls": 1.0}
    assert samples["meshgate_mesh_tls_plaintext_requests_total"] == [({"outcome": "refused"}, 1.0)]


def test_intentions_refuse_and_then_admit_a_caller(mesh: Mesh, tmp_path: Path) -> None:
    users_app = mesh.app("users")
    users = mesh.sidecar(users_app, "users-1", extra=MESH_TLS)
    edge = mesh.edge(ROUTES, extra=MESH_TLS)
    assert http(f"{edge.url}/api/users/echo")[0] == 200

    deny = create_intention(mesh, "meshgate-edge", "users", "deny")
    status, problem = wait_for_status(f"{edge.url}/api/users/echo", 403)
    assert problem["type"].endswith("/intention-denied"), problem
    assert "'meshgate-edge' may not call 'users'" in problem["detail"]
    assert "intention deny meshgate-edge => users" in problem["detail"]
    # The app never sees a refused request, and each is counted.
    seen = users_app.stats()["total"]
    ((labels, before),) = metrics(users.admin)["meshgate_intention_refusals_total"]
    assert labels == {"source": "meshgate-edge"}
    assert [http(f"{edge.url}/api/users/echo")[0] for _ in range(3)] == [403] * 3
    assert users_app.stats()["total"] == seen
    ((_, after),) = metrics(users.admin)["meshgate_intention_refusals_total"]
    assert after == before + 3

    # A more precise intention for another caller does not reach this one; a
    # wildcard allow has lower precedence than the exact deny.
    create_intention(mesh, "*", "users", "allow")
    assert http(f"{edge.url}/api/users/echo")[0] == 403
    status, _ = https_get(users.inbound, "/users/echo", client_context(mesh, tmp_path, "web"))
    assert status == 200

    consul_api(mesh.consul, "DELETE", f"/v1/connect/intentions/{urllib.parse.quote(deny)}")
    wait_for_status(f"{edge.url}/api/users/echo", 200)


def test_a_certificate_of_another_service_is_refused_before_anything_is_sent(
    mesh: Mesh,
) -> None:
    """An instance registered as ``payments`` whose sidecar holds ``users``' certificate
    (a mistaken or malicious registration) is not sent the request: 502, nothing sent."""
    users_app = mesh.app("users")
    users = mesh.sidecar(users_app, "users-1", extra=MESH_TLS)
    consul_api(
        mesh.consul,
        "PUT",
        "/v1/agent/service/register",
        {
            "Name": "payments",
            "ID": "payments-impostor",
            "Address": "127.0.0.1",
            "Port": users.inbound,
            "Connect": {"Native": True},
        },
    )
    edge = mesh.edge(ROUTES, extra=MESH_TLS)
    status, _, body = http(f"{edge.url}/api/payments/echo")
    assert status == 502, body
    problem = json.loads(body)
    assert "its certificate is 'users''s, not 'payments''s" in problem["detail"], problem
    assert users_app.stats()["total"] == 0
    # The real users route works over the same address; a connection verified for
    # users is then pooled, and never lent to the payments route.
    assert http(f"{edge.url}/api/users/echo")[0] == 200
    assert http(f"{edge.url}/api/payments/echo")[0] == 502
    assert users_app.stats()["total"] == 1


def test_require_skips_instances_outside_mesh_tls(mesh: Mesh) -> None:
    """With ``require``, a plain instance is never called; without, it is, over HTTP."""
    plain = mesh.sidecar(mesh.app("users"), "users-plain")
    strict = mesh.edge(ROUTES, extra={"mesh_tls": {"enabled": True, "require": True}})
    status, _, body = http(f"{strict.url}/api/users/echo")
    assert status == 502, body
    assert "not registered for mesh TLS" in json.loads(body)["detail"]
    lenient = mesh.edge(ROUTES, extra=MESH_TLS)
    assert http(f"{lenient.url}/api/users/echo")[0] == 200
    assert plain.instance_id == "users-plain"


def test_default_deny_refuses_callers_no_intention_allows(mesh: Mesh) -> None:
    extra = {"mesh_tls": {"enabled": True, "default_intention": "deny"}}
    mesh.sidecar(mesh.app("users"), "users-1", extra=extra)
    edge = mesh.edge(ROUTES, extra=MESH_TLS)
    status, _, body = http(f"{edge.url}/api/users/echo")
    assert status == 403
    assert "no intention matches; the default is deny" in json.loads(body)["detail"]
    create_intention(mesh, "meshgate-edge", "users", "allow")
    wait_for_status(f"{edge.url}/api/users/echo", 200)


def test_the_sidecar_waits_for_its_certificate_before_opening_inbound(mesh: Mesh) -> None:
    """No certificate, no inbound listener: a sidecar whose agent has Connect off
    (simulated by a Consul address with nothing listening) is never ready."""
    dead = free_port()
    extra = {
        **MESH_TLS,
        "consul": {"address": f"127.0.0.1:{dead}"},
        "registration": {"enabled": False},
        "discovery": {"initial_fetch_timeout": 0},
    }
    sidecar = mesh.sidecar(mesh.app("users"), "users-1", extra=extra, wait_ready=False)
    time.sleep(2)
    assert sidecar.process.alive()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", sidecar.inbound)) != 0


def mesh_tls_view(admin: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/mesh-tls", timeout=5) as resp:
        view: dict[str, Any] = json.loads(resp.read())
    return view


def served_certificate(port: int, context: ssl.SSLContext) -> dict[str, Any]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None
    return cert


async def test_a_ca_rotation_is_followed_without_a_failed_request(
    mesh: Mesh, tmp_path: Path
) -> None:
    """Consul's CA gets a new root key: both sides trust the new root at once, take
    re-signed certificates within Consul's jitter (up to 30 s), and serve new
    handshakes with them; requests keep succeeding all along."""
    users = mesh.sidecar(mesh.app("users"), "users-1", extra=MESH_TLS)
    edge = mesh.edge(ROUTES, extra=MESH_TLS)
    old_root = mesh_tls_view(users.admin)["roots"]["active_id"]
    statuses: list[int] = []
    stop = asyncio.Event()

    async def traffic(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            async with session.get(f"{edge.url}/api/users/echo") as resp:
                statuses.append(resp.status)
            await asyncio.sleep(0.02)

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    async with aiohttp.ClientSession() as session:
        running = asyncio.create_task(traffic(session))
        await asyncio.sleep(0.3)
        consul_api(
            mesh.consul,
            "PUT",
            "/v1/connect/ca/configuration",
            {"Provider": "consul", "Config": {"PrivateKey": key.decode()}},
        )

        def renewed(admin: int) -> bool:
            view = mesh_tls_view(admin)
            return view["updates"]["certificate"] >= 1 and view["roots"]["active_id"] != old_root

        deadline = time.monotonic() + 60
        while not (renewed(users.admin) and renewed(edge.admin)):
            assert time.monotonic() < deadline, (
                mesh_tls_view(users.admin),
                mesh_tls_view(edge.admin),
            )
            await asyncio.sleep(0.5)
        # New connections from the edge (concurrent requests grow its pool) use the
        # new certificates on both sides.
        answers = await asyncio.gather(
            *(session.get(f"{edge.url}/api/users/echo") for _ in range(20))
        )
        assert [a.status for a in answers] == [200] * 20
        for a in answers:
            a.release()
        stop.set()
        await running
    assert statuses and set(statuses) == {200}, statuses
    # The sidecar serves its re-signed certificate to a new client.
    view = mesh_tls_view(users.admin)
    served = served_certificate(users.inbound, client_context(mesh, tmp_path, "web"))
    assert int(served["serialNumber"], 16) == int(
        view["certificate"]["serial"].replace(":", ""), 16
    )
    replaced = metrics(users.admin)["meshgate_mesh_tls_replacements_total"]
    assert ({"role": "sidecar", "part": "certificate"}, 1.0) in replaced


async def test_a_websocket_tunnels_over_mesh_tls(mesh: Mesh) -> None:
    """The switched connection is the TLS one: the tunnel carries messages both ways."""
    mesh.sidecar(mesh.app("users"), "users-1", extra=MESH_TLS)
    edge = mesh.edge(ROUTES, extra=MESH_TLS)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{edge.port}/api/users/ws") as ws,
    ):
        hello = await ws.receive_json(timeout=5)
        assert hello["service"] == "users"
        big = b"x" * (256 * 1024)
        await ws.send_bytes(big)
        assert await ws.receive_bytes(timeout=10) == big
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "hello"


def test_two_edge_workers_each_hold_a_certificate(mesh: Mesh) -> None:
    """With ``workers: 2`` each worker follows Consul Connect for itself."""
    mesh.sidecar(mesh.app("users"), "users-1", extra=MESH_TLS)
    edge = mesh.edge(ROUTES, extra={**MESH_TLS, "workers": 2})
    wait_until(lambda: len(descendants(edge.process.pid)) == 2, 10, "two workers")
    # A connection per request: SO_REUSEPORT spreads them over both workers.
    for _ in range(20):
        assert http(f"{edge.url}/api/users/echo")[0] == 200

    # (Each worker opens its listener only once it holds a certificate, and a worker
    # without one could not reach the Connect-native sidecar: 20 answers from both say
    # both have one.) Each refreshes its gauges every second; the scrape aggregates
    # them (the least of the workers'), whichever worker answers it.
    wait_until(
        lambda: metrics(edge.admin)["meshgate_mesh_tls_ready"] == [({"role": "edge"}, 1.0)],
        5,
        "both workers' gauges refreshed",
    )
    expiry = metrics(edge.admin)["meshgate_mesh_tls_certificate_expiry_timestamp_seconds"]
    assert len(expiry) == 1 and expiry[0][1] > time.time() + 3600


def test_without_mesh_tls_no_caller_can_claim_a_client_certificate(mesh: Mesh) -> None:
    """The header an app would read for its caller's identity is a sidecar's alone: the
    edge removes a copy a client sent (here to an app it reaches directly), and so does
    a plain sidecar (which writes none)."""
    spoofed = {"X-Forwarded-Client-Cert": "URI=spiffe://x/ns/default/dc/dc1/svc/admin"}

    def headers_seen(url: str) -> list[str]:
        status, _, body = http(url, spoofed)
        assert status == 200, body
        return [k.lower() for k, _ in json.loads(body)["headers"]]

    bare = mesh.app("orders")  # no sidecar: registered as it is
    consul_api(
        mesh.consul,
        "PUT",
        "/v1/agent/service/register",
        {"Name": "orders", "ID": "orders-bare", "Address": "127.0.0.1", "Port": bare.port},
    )
    users = mesh.sidecar(mesh.app("users"), "users-1")
    edge = mesh.edge(ROUTES)
    wait_until(lambda: http(f"{edge.url}/api/orders/echo")[0] == 200, 10, "orders routed")
    assert "x-forwarded-client-cert" not in headers_seen(f"{edge.url}/api/orders/echo")
    seen = headers_seen(f"http://127.0.0.1:{users.inbound}/users/echo")
    assert "x-forwarded-client-cert" not in seen


def test_a_reload_changes_the_default_intention_and_require(mesh: Mesh) -> None:
    """``mesh_tls.default_intention`` (sidecar) and ``mesh_tls.require`` (edge) apply on
    SIGHUP; the rest of the section waits for a restart."""
    users = mesh.sidecar(mesh.app("users"), "users-1", extra=MESH_TLS)
    mesh.sidecar(mesh.app("orders"), "orders-plain")  # not in mesh TLS
    edge = mesh.edge(ROUTES, extra=MESH_TLS)
    assert http(f"{edge.url}/api/users/echo")[0] == 200
    assert http(f"{edge.url}/api/orders/echo")[0] == 200  # plain HTTP, allowed

    config = yaml.safe_load(users.config_path.read_text())
    rewrite(users, mesh_tls={**config["mesh_tls"], "default_intention": "deny"})
    view = hang_up(users, "applied")
    assert view["last_reload"]["applied"] == ["mesh_tls.default_intention"]
    status, _, body = http(f"{edge.url}/api/users/echo")
    assert status == 403
    assert "no intention matches; the default is deny" in json.loads(body)["detail"]

    config = yaml.safe_load(edge.config_path.read_text())
    rewrite(
        edge,
        mesh_tls={**config["mesh_tls"], "require": True, "service": "another-edge"},
    )
    view = hang_up(edge, "applied")
    assert view["last_reload"]["applied"] == ["mesh_tls.require"]
    assert view["restart_pending"] == ["mesh_tls.service"]
    status, _, body = http(f"{edge.url}/api/orders/echo")
    assert status == 502
    assert "not registered for mesh TLS" in json.loads(body)["detail"]


def test_permissive_mode_serves_plain_callers_until_a_reload_makes_it_strict(
    mesh: Mesh,
) -> None:
    """A migration into mesh TLS: a ``permissive`` sidecar serves callers over plain
    HTTP (unidentified, past the intentions) and over mesh TLS (judged by them); the
    plain ones are counted; a reload to ``strict`` then refuses them, serving on."""
    permissive = {"mesh_tls": {"enabled": True, "mode": "permissive"}}
    users_app = mesh.app("users")
    users = mesh.sidecar(users_app, "users-1", extra=permissive)
    old_edge = mesh.edge(ROUTES)  # not in mesh TLS yet: plain HTTP to every instance
    new_edge = mesh.edge(ROUTES, extra={"mesh_tls": {"enabled": True, "service": "edge-v2"}})

    def client_cert_seen(url: str) -> str | None:
        status, _, body = http(url)
        assert status == 200, body
        seen = [v for k, v in json.loads(body)["headers"] if k.lower() == "x-forwarded-client-cert"]
        return seen[0] if seen else None

    registered = consul_api(mesh.consul, "GET", "/v1/agent/services")["users-1"]
    assert registered["Connect"] == {"Native": True}  # mesh-TLS callers use TLS
    assert client_cert_seen(f"{old_edge.url}/api/users/echo") is None
    assert str(client_cert_seen(f"{new_edge.url}/api/users/echo")).endswith("/svc/edge-v2")
    with urllib.request.urlopen(f"http://127.0.0.1:{users.admin}/mesh-tls", timeout=5) as resp:
        assert json.loads(resp.read())["mode"] == "permissive"

    # Intentions judge the mesh-TLS caller only: plain HTTP carries no identity.
    create_intention(mesh, "edge-v2", "users", "deny")
    wait_for_status(f"{new_edge.url}/api/users/echo", 403)
    assert http(f"{old_edge.url}/api/users/echo")[0] == 200
    samples = metrics(users.admin)
    assert samples["meshgate_mesh_tls_plaintext_requests_total"] == [({"outcome": "admitted"}, 2.0)]
    outcomes = {
        labels["outcome"] for labels, _ in samples["meshgate_mesh_tls_inbound_connections_total"]
    }
    assert outcomes - {"no_data"} == {"plaintext", "tls"}  # no_data: port probes

    # Every caller migrated: strict from the next request, the port serving on.
    served = users_app.stats()["total"]
    rewrite(users, mesh_tls={**permissive["mesh_tls"], "mode": "strict"})
    view = hang_up(users, "applied")
    assert view["last_reload"]["applied"] == ["mesh_tls.mode"]
    status, _, body = http(f"{old_edge.url}/api/users/echo")
    assert status == 403, body
    assert "takes callers over mesh TLS only" in json.loads(body)["detail"]
    assert users_app.stats()["total"] == served
