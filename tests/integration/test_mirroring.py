"""Request mirroring through real processes: Consul, the edge, sidecars and demo apps.

The shadow is a second ``users`` app behind a sidecar registered as ``users-v2``;
every app records what its echo received (``/admin/received``), so a copy can be
compared with the request the service itself got.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from demo.processes import wait_until
from tests.integration.harness import App, Edge, Mesh, hang_up, http, metrics, rewrite
from tests.integration.test_auth import start_auth_mesh

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}


def shadow(mesh: Mesh, extra: dict[str, Any] | None = None) -> App:
    """A ``users`` app behind a sidecar registering it as ``users-v2``."""
    app = mesh.app("users", "users-v2-1")
    mesh.sidecar(replace(app, name="users-v2"), "users-v2-1", extra=extra)
    return app


def received(app: App) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{app.url}/admin/received", timeout=5) as resp:
        seen: list[dict[str, Any]] = json.loads(resp.read())
    return seen


def with_seq(app: App, seq: str) -> list[dict[str, Any]]:
    return [r for r in received(app) if dict(r["headers"]).get("X-Test-Seq") == seq]


def counts(edge: Edge, family: str, label: str) -> dict[str, float]:
    """``meshgate_mirror_<family>_total`` by ``label`` (outcome or result), summed."""
    out: dict[str, float] = {}
    for labels, value in metrics(edge.admin).get(f"meshgate_mirror_{family}_total", []):
        out[labels[label]] = out.get(labels[label], 0) + value
    return out


def by_seq(app: App, seq: str) -> int:
    return int(app.stats()["by_seq"].get(seq, 0))


def route_view(edge: Edge, prefix: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/routes", timeout=5) as resp:
        view = json.loads(resp.read())
    [route] = [r for r in view["routes"] if r["prefix"] == prefix]
    return dict(route)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def test_the_shadow_gets_the_request_as_the_service_does(mesh: Mesh, tmp_path: Path) -> None:
    """Identity headers and token (checked by the shadow's own sidecar), header changes,
    body, request id: as the service got them; Host with -shadow; the client's answer is
    the service's."""
    routes = [{**USERS, "mirror": {"service": "users-v2"}}]
    extra = {"headers": {"request": {"set": {"X-Env": "prod"}}}}
    am = start_auth_mesh(mesh, tmp_path, routes=routes, edge_extra=extra)
    public_key = tmp_path / "edge-identity.pub.pem"  # the edge's, written by start_auth_mesh
    v2 = shadow(
        mesh, extra={"identity": {"edge_public_key_file": str(public_key), "require": True}}
    )
    url = f"{am.edge.url}/api/users/echo"
    token = am.token("alice", roles=("user",))
    body = b'{"item": 7, "note": "mirrored"}' * 40
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    # The edge learns of the shadow from Consul (until then: no_instance).
    def copied() -> bool:
        post(url, body, {**headers, "X-Test-Seq": "probe"})
        return counts(am.edge, "requests", "outcome").get("sent", 0) >= 1

    wait_until(copied, 15, "a first copy sent to the shadow")
    status, answer = post(url, body, {**headers, "X-Test-Seq": "the-one"})
    assert status == 200
    assert (answer["instance"], answer["body_bytes"]) == ("users-1", len(body))  # the service's
    wait_until(lambda: len(with_seq(v2, "the-one")) == 1, 10, "the copy at the shadow")
    [copy] = with_seq(v2, "the-one")
    [original] = with_seq(am.users, "the-one")
    assert (copy["method"], copy["path"]) == ("POST", "/users/echo")
    assert copy["body_sha256"] == original["body_sha256"] == hashlib.sha256(body).hexdigest()
    got, sent = dict(copy["headers"]), dict(original["headers"])
    name, _, port = sent["Host"].rpartition(":")
    assert got["Host"] == f"{name}-shadow:{port}"
    assert (got["X-User-Id"], got["X-Auth-Method"], got["X-Env"]) == ("alice", "jwt", "prod")
    own = {"Host", "traceparent", "X-Mesh-Deadline-Ms"}  # each request's own
    assert {k: v for k, v in got.items() if k not in own} == {
        k: v for k, v in sent.items() if k not in own
    }
    # The same trace (each hop writes its own parent span id).
    assert got["traceparent"].split("-")[1] == sent["traceparent"].split("-")[1]
    # The signed identity token too (which the shadow's sidecar required and checked).
    assert "x-mesh-identity" in {k.lower() for k in got}
    wait_until(
        lambda: counts(am.edge, "responses", "result").get("2xx", 0) >= 2, 10, "answers counted"
    )


def test_a_hanging_then_dead_shadow_never_holds_the_client(mesh: Mesh) -> None:
    users = mesh.app("users", "users-1")
    mesh.sidecar(users, "users-1")
    v2 = shadow(mesh)
    v2.faults(hang=True)
    mirror = {"service": "users-v2", "timeout": "3s", "max_in_flight": 2}
    edge = mesh.edge([{**USERS, "mirror": mirror}])  # the shadow already in its catalog
    url = f"{edge.url}/api/users/echo"

    for _ in range(20):
        started = time.monotonic()
        status, _, body = http(url)
        assert status == 200 and json.loads(body)["instance"] == "users-1"
        assert time.monotonic() - started < 1.0  # a held request would take 3 s, or forever
    outcomes = counts(edge, "requests", "outcome")
    # Two copies hang for 3 s; every one while both slots are taken is dropped.
    assert outcomes["sent"] >= 2 and outcomes["dropped"] >= 1
    assert outcomes["sent"] + outcomes["dropped"] == 20
    wait_until(
        lambda: counts(edge, "responses", "result").get("timeout", 0) == outcomes["sent"],
        10,
        "every copy sent timed out",
    )
    assert metrics(edge.admin)["meshgate_mirror_in_flight"][0][1] == 0

    v2.process.stop()  # dead: its sidecar answers 502, then Consul drops it
    for _ in range(20):
        started = time.monotonic()
        status, _, body = http(url)
        assert status == 200 and json.loads(body)["instance"] == "users-1"
        assert time.monotonic() - started < 1.0
    results = counts(edge, "responses", "result")
    outcomes = counts(edge, "requests", "outcome")
    failed = results.get("5xx", 0) + results.get("failed", 0) + outcomes.get("no_instance", 0)
    assert failed >= 1


def test_a_share_is_copied_shown_at_routes_and_reloads_follow(mesh: Mesh) -> None:
    users = mesh.app("users", "users-1")
    mesh.sidecar(users, "users-1")
    v2 = shadow(mesh)
    edge = mesh.edge([{**USERS, "mirror": {"service": "users-v2", "percent": 25}}])
    assert route_view(edge, "/api/users")["mirror"] == {
        "service": "users-v2",
        "percent": 25.0,
        "max_body_size": 65536,
        "timeout": None,
        "max_in_flight": 100,
    }
    url = f"{edge.url}/api/users/echo"
    for _ in range(400):
        status, _, _ = http(url, {"X-Test-Seq": "share"})
        assert status == 200
    assert by_seq(users, "share") == 400
    sent = counts(edge, "requests", "outcome")["sent"]
    wait_until(lambda: by_seq(v2, "share") == sent, 10, "every copy sent at the shadow")
    # 25 % of 400 is 100 (standard deviation 8.7): outside 50..150 is over 5 deviations.
    assert 50 <= sent <= 150
    assert counts(edge, "responses", "result") == {"2xx": sent}

    rewrite(edge, routes=[{**USERS, "mirror": {"service": "users-v2", "percent": 100}}])
    assert hang_up(edge, "applied")["last_reload"]["applied"] == ["routes"]
    assert route_view(edge, "/api/users")["mirror"]["percent"] == 100.0
    for _ in range(10):
        http(url, {"X-Test-Seq": "all"})
    wait_until(lambda: by_seq(v2, "all") == 10, 10, "every request copied")

    rewrite(edge, routes=[USERS])
    hang_up(edge, "applied", count=2)
    assert route_view(edge, "/api/users")["mirror"] is None
    for _ in range(10):
        http(url, {"X-Test-Seq": "none"})
    time.sleep(1.0)  # a copy, were one sent, would be at the shadow by now
    assert (by_seq(users, "none"), by_seq(v2, "none")) == (10, 0)
