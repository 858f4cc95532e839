"""The edge reads its config file again on SIGHUP: real edge processes, Consul, apps, Redis.

What is checked: routes, rate-limit policies and the TLS certificate change
while the edge serves; a request in flight finishes under the old routes; a
bad file, or one the running edge cannot apply, changes nothing and says
why; keys that need a restart are reported, not applied; several workers
all reload on the supervisor's SIGHUP.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import urllib.request
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import aiohttp
import trustme
import yaml

from demo.processes import RedisServer, wait_until
from tests.integration.harness import (
    Edge,
    Mesh,
    consul_api,
    descendants,
    hang_up,
    http,
    metrics,
    reloads,
    rewrite,
)

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
USERS_V2 = {"prefix": "/v2/users", "service": "users", "prefix_rewrite": "/users"}


def gauge(edge: Edge, name: str) -> float:
    return metrics(edge.admin)[name][0][1]


def test_routes_change_and_restart_only_keys_are_reported(mesh: Mesh) -> None:
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge([USERS])
    assert http(f"{edge.url}/api/users/echo")[0] == 200
    assert reloads(edge) == {"applied": 0, "refused": 0}
    started = gauge(edge, "meshgate_config_last_reload_success_timestamp_seconds")

    rewrite(
        edge,
        routes=[USERS_V2],
        listen={"host": "127.0.0.1", "port": edge.port, "idle_timeout": "30s"},
    )
    view = hang_up(edge, "applied")
    assert view["last_reload"]["outcome"] == "applied"
    assert view["last_reload"]["applied"] == ["routes"]
    assert view["restart_pending"] == ["listen.idle_timeout"]
    assert http(f"{edge.url}/v2/users/echo")[0] == 200
    status, headers, body = http(f"{edge.url}/api/users/echo")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 404
    assert gauge(edge, "meshgate_config_restart_pending") == 1
    assert gauge(edge, "meshgate_config_last_reload_success_timestamp_seconds") > started
    log = edge.process.log_tail(200)
    assert "applied routes" in log
    assert "listen.idle_timeout differs from the running value" in log

    # Back as it started: nothing pending any more.
    rewrite(edge, routes=[USERS], listen={"host": "127.0.0.1", "port": edge.port})
    view = hang_up(edge, "applied", 2)
    assert view["restart_pending"] == []
    assert gauge(edge, "meshgate_config_restart_pending") == 0
    assert http(f"{edge.url}/api/users/echo")[0] == 200


def test_a_bad_file_changes_nothing_and_says_why(mesh: Mesh) -> None:
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge([USERS])

    rewrite(edge, routes=[{**USERS_V2, "prefix": "v2/users"}])
    view = hang_up(edge, "refused")
    expected = f"invalid configuration in {edge.config_path}: routes[0].prefix: must start with '/'"
    assert view["last_reload"]["error"] == expected
    assert f"meshgate: {expected}" in edge.process.log_tail(50)
    assert "Traceback" not in edge.process.log_tail(200)
    assert http(f"{edge.url}/api/users/echo")[0] == 200
    assert http(f"{edge.url}/v2/users/echo")[0] == 404

    # Valid on its own, but the route needs API keys the running edge does not check
    # (auth waits for a restart): refused, rather than a route that fails every request.
    rewrite(
        edge,
        routes=[{**USERS_V2, "auth": {"policy": "required", "methods": ["apikey"]}}],
        auth={"api_keys": {"redis_url": "redis://127.0.0.1:1/0"}},
    )
    view = hang_up(edge, "refused", 2)
    assert "routes[0].auth: method apikey is not configured" in view["last_reload"]["error"]
    assert http(f"{edge.url}/api/users/echo")[0] == 200
    assert http(f"{edge.url}/v2/users/echo")[0] == 404
    assert reloads(edge) == {"applied": 0, "refused": 2}


def test_a_request_in_flight_finishes_under_the_routes_it_started_with(mesh: Mesh) -> None:
    app = mesh.app("users", "users-1")
    mesh.sidecar(app, "users-1")
    edge = mesh.edge([USERS])
    app.faults(latency_ms=1500)
    answered: list[int] = []
    slow = threading.Thread(target=lambda: answered.append(http(f"{edge.url}/api/users/a")[0]))
    slow.start()
    wait_until(lambda: app.stats()["in_progress"] == 1, 5, "the request at the app")
    rewrite(edge, routes=[USERS_V2])
    hang_up(edge, "applied")
    assert http(f"{edge.url}/api/users/b")[0] == 404  # a new request: the new routes
    slow.join(10)
    assert answered == [200]


def test_rate_limit_policies_change_live(mesh: Mesh) -> None:
    redis = RedisServer().start()
    try:
        mesh.sidecar(mesh.app("users", "users-1"), "users-1")
        policy = {"count_by": "ip", "limit": "2/min burst 2", "on_failure": "closed"}
        rate_limits = {
            "redis": {"url": redis.url},
            "policies": {"per-ip": policy},
            "default_policies": ["per-ip"],
        }
        edge = mesh.edge([USERS], extra={"rate_limits": rate_limits})
        statuses = [http(f"{edge.url}/api/users/echo")[0] for _ in range(3)]
        assert statuses == [200, 200, 429]

        roomy = {**policy, "limit": "1000/s burst 1000"}
        rewrite(edge, rate_limits={**rate_limits, "policies": {"per-ip": roomy}})
        view = hang_up(edge, "applied")
        assert view["last_reload"]["applied"] == ["rate_limits.policies.per-ip.limit"]
        assert [http(f"{edge.url}/api/users/echo")[0] for _ in range(5)] == [200] * 5
    finally:
        redis.stop()


def _write_cert(ca: trustme.CA, cert_file: Path, key_file: Path) -> trustme.LeafCert:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return cert


def _served_cert(edge: Edge, client: ssl.SSLContext) -> bytes:
    raw = socket.create_connection(("127.0.0.1", edge.port), timeout=5)
    with client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_a_renewed_certificate_is_served_without_a_restart(mesh: Mesh, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = _write_cert(ca, cert_file, key_file)
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge(
        [USERS], extra={"tls": {"cert_file": str(cert_file), "key_file": str(key_file)}}
    )
    client = ssl.create_default_context()
    ca.configure_trust(client)
    assert _served_cert(edge, client) == ssl.PEM_cert_to_DER_cert(
        first.cert_chain_pems[0].bytes().decode()
    )
    # A connection opened before the renewal keeps working.
    raw = socket.create_connection(("127.0.0.1", edge.port), timeout=5)
    before = client.wrap_socket(raw, server_hostname="127.0.0.1")

    # Renewed in place (same paths, the config file unchanged), as certbot or cert-manager do.
    second = _write_cert(ca, cert_file, key_file)
    hang_up(edge, "applied")
    served = _served_cert(edge, client)
    assert served == ssl.PEM_cert_to_DER_cert(second.cert_chain_pems[0].bytes().decode())
    before.sendall(b"GET /api/users/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert before.recv(64).startswith(b"HTTP/1.1 200")
    before.close()

    # A key that does not match: refused, the renewed certificate stays.
    key_file.write_bytes(trustme.CA().issue_cert("x").private_key_pem.bytes())
    view = hang_up(edge, "refused")
    assert "cannot load the TLS certificate and key" in view["last_reload"]["error"]
    assert _served_cert(edge, client) == served


def test_every_worker_reloads_on_the_supervisors_sighup(mesh: Mesh) -> None:
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge([USERS], extra={"workers": 2})  # the harness's ports are fixed ones
    wait_until(lambda: len(descendants(edge.process.pid)) == 2, 10, "two workers")
    rewrite(edge, routes=[USERS_V2])
    hang_up(edge, "applied", 2)  # one per worker, counted across both
    # Each worker's own outcome, whichever worker the admin call reaches.
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/config?workers=all") as resp:
        answers = json.loads(resp.read())["workers"]
    assert [(w["worker"], w["answer"]["last_reload"]["outcome"]) for w in answers] == [
        (0, "applied"),
        (1, "applied"),
    ]
    # urllib opens a connection per request: SO_REUSEPORT spreads them over both workers.
    assert {http(f"{edge.url}/v2/users/echo")[0] for _ in range(20)} == {200}
    assert {http(f"{edge.url}/api/users/echo")[0] for _ in range(20)} == {404}
    assert len(descendants(edge.process.pid)) == 2


def test_a_sidecar_reregisters_with_new_tags_and_meta_and_the_edge_follows(mesh: Mesh) -> None:
    sidecar = mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge([])  # routes only from Consul meta
    assert http(f"{edge.url}/api/users/echo")[0] == 404

    config = yaml.safe_load(sidecar.config_path.read_text())
    service = {
        **config["service"],
        "tags": ["v2"],
        "meta": {"meshgate-route": "/api/users", "meshgate-route-rewrite": "/users"},
    }
    rewrite(sidecar, service=service, inbound={**config["inbound"], "host": "0.0.0.0"})
    view = hang_up(sidecar, "applied")
    assert view["last_reload"]["applied"] == [
        "service.meta.meshgate-route",
        "service.meta.meshgate-route-rewrite",
        "service.tags",
    ]
    assert view["restart_pending"] == ["inbound.host"]

    def registered() -> dict[str, Any]:
        [entry] = consul_api(mesh.consul, "GET", "/v1/health/service/users")
        return dict(entry["Service"])

    wait_until(lambda: registered()["Tags"] == ["v2"], 10, "the new tags in Consul")
    assert registered()["Meta"]["meshgate-route"] == "/api/users"
    wait_until(lambda: http(f"{edge.url}/api/users/echo")[0] == 200, 15, "the edge to route it")

    # A bad file: refused, and the sidecar serves on as it was.
    rewrite(sidecar, resilience={"defaults": {"retries": {"max_attempts": 0}}})
    view = hang_up(sidecar, "refused")
    assert "resilience.defaults.retries.max_attempts" in view["last_reload"]["error"]
    assert http(f"{edge.url}/api/users/echo")[0] == 200
    assert registered()["Tags"] == ["v2"]


def test_reloads_under_load_lose_no_request(mesh: Mesh) -> None:
    """Clients keep calling while the file flips between two versions and is reloaded
    twenty times: every request is answered 200, on kept-alive connections and new ones."""
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge([USERS])
    other = {"prefix": "/other", "service": "users", "prefix_rewrite": "/users"}
    versions = [
        {"routes": [USERS, other], "headers": {"response": {"set": {"X-Version": "b"}}}},
        {"routes": [USERS], "headers": None},
    ]
    statuses: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client(keep_alive: bool) -> None:
        conn = HTTPConnection("127.0.0.1", edge.port, timeout=10)
        try:
            while not stop.is_set():
                if not keep_alive:
                    conn.close()
                conn.request("GET", "/api/users/echo")
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in (True, True, False)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            rewrite(edge, **versions[i % 2])
            hang_up(edge, "applied", i + 1)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert errors == []
    assert len(statuses) > 100
    assert set(statuses) == {200}


async def test_a_sidecar_resizes_its_inbound_cap_while_requests_wait(mesh: Mesh) -> None:
    """Cap 1 and a slow app: of four concurrent calls one is served and the others wait.
    A reload raising the cap to 4 lets the waiting ones in at once (none is turned
    away, none interrupted); lowering it again to 1 with no queue sheds the excess."""
    app = mesh.app("backend", "backend-0")
    limit = {"max_in_flight": 1, "max_queue": 8, "queue_timeout": "10s"}
    side = mesh.sidecar(app, "backend-0", extra={"inbound": {"limit": limit}})
    app.faults(latency_ms=1500)
    url = f"http://127.0.0.1:{side.inbound}/backend/echo"

    async def call(s: aiohttp.ClientSession) -> int:
        async with s.get(url) as resp:
            await resp.read()
            return resp.status

    config = yaml.safe_load(side.config_path.read_text())
    async with aiohttp.ClientSession() as s:
        calls = [asyncio.create_task(call(s)) for _ in range(4)]
        await asyncio.sleep(0.5)  # one at the app, three waiting for its slot
        assert app.stats()["in_progress"] == 1
        rewrite(side, inbound={**config["inbound"], "limit": {**limit, "max_in_flight": 4}})
        view = hang_up(side, "applied")
        assert view["last_reload"]["applied"] == ["inbound.limit.max_in_flight"]
        await asyncio.sleep(0.5)
        assert app.stats()["in_progress"] == 4  # the three waiting were let in at once
        assert await asyncio.gather(*calls) == [200] * 4

        lowered = {**limit, "max_in_flight": 1, "max_queue": 0}
        rewrite(side, inbound={**config["inbound"], "limit": lowered})
        hang_up(side, "applied", count=2)
        statuses = await asyncio.gather(*(call(s) for _ in range(3)))
    assert sorted(statuses) == [200, 503, 503]
    assert app.stats()["max_in_progress"] == 4
