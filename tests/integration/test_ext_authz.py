"""External authorization end to end: real Consul, the auth service, the ``users`` app, the
demo's authorization service (``demo.service --name authz``, :mod:`demo.authz_policy`),
each behind a sidecar that refuses identity headers the edge did not sign, and the edge.

The authorization service is found in Consul by name, like any other; every check it
answers is recorded at its ``/admin/received``, so what the edge sent can be compared
with what the client did.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from multidict import CIMultiDict

from demo.processes import wait_until
from tests.integration.harness import App, Mesh, hang_up, http, metrics, rewrite
from tests.integration.otlp_receiver import OtlpReceiver
from tests.integration.test_auth import AuthMesh, start_auth_mesh

CHECK: dict[str, Any] = {
    "service": "authz",
    "path_prefix": "/authz/check",
    # Accept: the demo policy sends browsers to sign in, API clients a challenge.
    "allowed_request_headers": ["Authorization", "Cookie", "Accept"],
    "allowed_upstream_headers": ["X-Authz-Subject", "X-Authz-Rule"],
    "allowed_client_headers": ["WWW-Authenticate", "Location", "Set-Cookie", "X-Authz-Reason"],
}
USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
PUBLIC = {"prefix": "/public/users", "service": "users", "prefix_rewrite": "/users", "auth": "none"}
OPEN = {**PUBLIC, "prefix": "/open/users", "ext_authz": False}
AUTH = {"prefix": "/auth", "service": "auth", "auth": "none", "ext_authz": False}
ROUTES = [USERS, PUBLIC, OPEN, AUTH]


@dataclass
class AuthzMesh:
    am: AuthMesh
    authz: App

    @property
    def url(self) -> str:
        return self.am.edge.url

    def alice(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.am.token('alice', roles=('user',))}"}


def start(
    mesh: Mesh,
    tmp_path: Path,
    section: dict[str, Any] | None = CHECK,
    edge_extra: dict[str, Any] | None = None,
) -> AuthzMesh:
    """The auth mesh with the authorization service behind a sidecar requiring the edge's
    identity signature; the edge with ``section`` as its ``ext_authz`` (None: none)."""
    extra = {**(edge_extra or {}), **({"ext_authz": section} if section is not None else {})}
    am = start_auth_mesh(mesh, tmp_path, routes=ROUTES, edge_extra=extra)
    public_key = tmp_path / "edge-identity.pub.pem"  # the edge's, written by start_auth_mesh
    authz = mesh.app("authz", "authz-1")
    identity = {"identity": {"edge_public_key_file": str(public_key), "require": True}}
    mesh.sidecar(authz, "authz-1", extra=identity)
    m = AuthzMesh(am, authz)
    if section is not None:
        # The edge learns of the authorization service from Consul.
        wait_until(lambda: get(f"{m.url}/api/users/echo", m.alice())[0] == 200, 20, "a first check")
    return m


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` on a new connection, redirects not followed: (status, lower-cased
    headers, body)."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def checks(authz: App) -> list[dict[str, Any]]:
    """What the authorization service was asked, oldest first (its last 100)."""
    status, _, body = http(f"{authz.url}/admin/received")
    assert status == 200
    seen: list[dict[str, Any]] = json.loads(body)
    return seen


def check_for(authz: App, request_id: str) -> tuple[dict[str, Any], CIMultiDict[str]]:
    """The check of the request ``request_id``, and its headers (any case)."""
    found = [
        (c, CIMultiDict(c["headers"]))
        for c in checks(authz)
        if CIMultiDict(c["headers"]).get("X-Request-Id") == request_id
    ]
    assert len(found) == 1, f"{len(found)} checks of {request_id}"
    return found[0]


def echoed(body: bytes) -> dict[str, str]:
    """The headers the users app received (its echo)."""
    return {k: v for k, v in json.loads(body)["headers"]}


def results(m: AuthzMesh) -> dict[tuple[str, str], float]:
    """``meshgate_ext_authz_requests_total`` by (route, result)."""
    return {
        (labels["route"], labels["result"]): value
        for labels, value in metrics(m.am.edge.admin).get("meshgate_ext_authz_requests_total", [])
    }


def timed(m: AuthzMesh) -> dict[str, float]:
    """Checks timed, by how they ended."""
    return {
        labels["result"]: value
        for labels, value in metrics(m.am.edge.admin).get(
            "meshgate_ext_authz_duration_seconds_count", []
        )
    }


def delta(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def by_seq(app: App, seq: str) -> int:
    return int(app.stats()["by_seq"].get(seq, 0))


def test_allowed_denied_redirected_and_what_the_check_carries(mesh: Mesh, tmp_path: Path) -> None:
    m = start(mesh, tmp_path)
    users = m.am.users
    before, timed_before = results(m), timed(m)

    # Allowed: the service gets the authorization service's headers, never the client's.
    spoofed = {
        "Cookie": "session=abc",
        "X-User-Id": "mallory",
        "X-Authz-Subject": "mallory",
        "X_Authz_Subject": "mallory",
        "X-Meshgate-Ext-Authz": "failed-open",
        "X-Test-Seq": "allowed",
    }
    alice = m.alice()
    status, headers, body = get(f"{m.url}/api/users/echo?page=2", {**alice, **spoofed})
    assert status == 200
    got = echoed(body)
    assert (got["X-Authz-Subject"], got["X-Authz-Rule"]) == ("alice", "read")
    assert got["X-User-Id"] == "alice"  # the edge's identity, not the client's
    assert "X-Authz-Debug" not in got  # not an allowed upstream header
    assert "X_Authz_Subject" not in got and "X-Meshgate-Ext-Authz" not in got
    assert "mallory" not in json.dumps(got)
    # What the check carried: the request, the edge's view, the verified identity (its
    # sidecar verified the edge's signature over it), the client's allowed headers.
    asked, check = check_for(m.authz, headers["x-request-id"])
    assert (asked["method"], asked["path"], asked["body_bytes"]) == (
        "GET",
        "/authz/check/api/users/echo?page=2",
        0,
    )
    assert (check["X-User-Id"], check["X-User-Roles"], check["X-Auth-Method"]) == (
        "alice",
        "user",
        "jwt",
    )
    assert "X-Mesh-Identity" in check
    assert check["Authorization"] == alice["Authorization"]  # as the client sent it
    assert check["Cookie"] == "session=abc"
    assert (check["X-Forwarded-Method"], check["X-Forwarded-Uri"]) == (
        "GET",
        "/api/users/echo?page=2",
    )
    assert check["X-Forwarded-Host"] == f"127.0.0.1:{m.am.edge.port}"
    assert check["X-Forwarded-For"].endswith("127.0.0.1")
    assert "traceparent" in check
    assert "X-Test-Seq" not in check and "X-Authz-Subject" not in check
    assert "mallory" not in json.dumps(asked["headers"])

    # Denied: 403 with the service's reason and its JSON body; users never asked.
    status, headers, body = get(
        f"{m.url}/api/users/admin/settings", {**m.alice(), "X-Test-Seq": "denied"}
    )
    assert status == 403
    assert headers["x-authz-reason"] == "role admin required"
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["detail"] == "alice: role admin required"
    # An anonymous browser is sent to sign in; an anonymous API client challenged.
    status, headers, _ = get(
        f"{m.url}/public/users/echo?x=1", {"Accept": "text/html", "X-Test-Seq": "denied"}
    )
    assert status == 302
    assert headers["location"] == "/auth/login?rd=%2Fpublic%2Fusers%2Fecho%3Fx%3D1"
    status, headers, body = get(f"{m.url}/public/users/echo", {"X-Test-Seq": "denied"})
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="meshgate-demo"'
    assert by_seq(users, "denied") == 0

    # A route not checked: the authorization service is not asked, and the client's copy
    # of a header the service trusts from it is removed all the same.
    asked_before = len(checks(m.authz))
    status, _, body = get(f"{m.url}/open/users/echo", {"X-Authz-Subject": "mallory"})
    assert status == 200 and "X-Authz-Subject" not in echoed(body)
    assert len(checks(m.authz)) == asked_before

    assert delta(results(m), before) == {
        ("users:/api/users", "allowed"): 1,
        ("users:/api/users", "denied"): 1,
        ("users:/public/users", "denied"): 2,
        ("users:/open/users", "skipped"): 1,
    }
    assert delta(timed(m), timed_before) == {"allowed": 1, "denied": 3}
    # Each route's own setting at /routes.
    status, _, body = http(f"http://127.0.0.1:{m.am.edge.admin}/routes")
    shown = {r["prefix"]: r["ext_authz"] for r in json.loads(body)["routes"]}
    assert shown["/api/users"] is None and shown["/open/users"] == {"disabled": True, "context": {}}
    status, _, body = http(f"http://127.0.0.1:{m.am.edge.admin}/ext-authz")
    view = json.loads(body)
    assert view["configured"] and view["destination"] == "service authz, path prefix /authz/check"


def test_a_reload_turns_it_on_and_failure_modes_decide_when_it_fails(
    mesh: Mesh, tmp_path: Path
) -> None:
    m = start(mesh, tmp_path, section=None)
    admin = f"{m.url}/api/users/admin/settings"
    # No section: nothing is checked.
    assert get(admin, m.alice())[0] == 200
    assert checks(m.authz) == []

    rewrite(m.am.edge, ext_authz={**CHECK, "timeout": "500ms"})
    assert hang_up(m.am.edge, "applied")["last_reload"]["applied"] == ["ext_authz"]
    wait_until(lambda: get(admin, m.alice())[0] == 403, 10, "checks to deny admin paths")

    # A hanging service: deny (the default) refuses with 503 once the timeout is out.
    m.authz.faults(hang=True)
    before = results(m)
    started = time.monotonic()
    status, headers, body = get(f"{m.url}/api/users/echo", m.alice())
    assert time.monotonic() - started >= 0.5
    assert status == 503 and headers["retry-after"] == "5"
    assert json.loads(body)["type"] == "https://meshgate.dev/problems/ext-authz-unavailable"
    assert delta(results(m), before) == {("users:/api/users", "error"): 1}

    # failure_mode: allow lets it through, marked for the service.
    rewrite(m.am.edge, ext_authz={**CHECK, "timeout": "500ms", "failure_mode": "allow"})
    hang_up(m.am.edge, "applied", count=2)
    status, _, body = get(f"{m.url}/api/users/echo", m.alice())
    assert status == 200 and echoed(body)["X-Meshgate-Ext-Authz"] == "failed-open"
    assert "X-Authz-Subject" not in echoed(body)

    # Down: its sidecar answers 502, then Consul takes it out (no instance). Either way
    # a failure: let through while allowed, refused (403 here) once denied again.
    m.authz.process.stop()
    before = results(m)
    status, _, body = get(f"{m.url}/api/users/echo", m.alice())
    assert status == 200 and echoed(body)["X-Meshgate-Ext-Authz"] == "failed-open"
    rewrite(m.am.edge, ext_authz={**CHECK, "status_on_error": 403})
    hang_up(m.am.edge, "applied", count=3)
    status, headers, body = get(f"{m.url}/api/users/echo", m.alice())
    assert status == 403 and "retry-after" not in headers
    assert json.loads(body)["type"] == "https://meshgate.dev/problems/ext-authz-unavailable"
    assert delta(results(m), before) == {
        ("users:/api/users", "failed_open"): 1,
        ("users:/api/users", "error"): 1,
    }
    status, _, body = http(f"http://127.0.0.1:{m.am.edge.admin}/ext-authz")
    view = json.loads(body)
    assert view["failing"] is True and view["last_error"]

    # Removed by a reload: nothing is checked again.
    rewrite(m.am.edge, ext_authz=None)
    hang_up(m.am.edge, "applied", count=4)
    assert get(admin, m.alice())[0] == 200


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """A receiver every process started by the test exports to (and nothing else set)."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    r = OtlpReceiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    try:
        yield r
    finally:
        r.stop()


def test_the_check_is_a_client_span_in_the_requests_trace(
    mesh: Mesh, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    m = start(mesh, tmp_path, edge_extra={"telemetry": {"tracing": {"sampler_ratio": 1.0}}})
    trace_id, parent = os.urandom(16).hex(), "00f067aa0ba902b7"
    traceparent = f"00-{trace_id}-{parent}-01"
    status, headers, _ = get(
        f"{m.url}/api/users/admin/x", {**m.alice(), "traceparent": traceparent}
    )
    assert status == 403

    def edge_spans() -> list[Any]:
        return [s for s in receiver.trace(trace_id) if s.service == "meshgate-edge"]

    receiver.wait_for(lambda: len(edge_spans()) == 2, "the edge's SERVER and check spans")
    [server] = [s for s in edge_spans() if s.kind == "SERVER"]
    [check_span] = [s for s in edge_spans() if s.kind == "CLIENT"]
    assert server.parent_id == parent
    assert check_span.parent_id == server.span_id  # a child of the edge's SERVER span
    assert check_span.name == "ext_authz" and check_span.attributes["meshgate.ext_authz"] is True
    assert check_span.attributes["http.response.status_code"] == 403
    # The authorization service got the check span's context: its sidecar's SERVER span
    # is the check span's child, and the app behind it is in the same trace.
    receiver.wait_for(
        lambda: any(s.parent_id == check_span.span_id for s in receiver.trace(trace_id)),
        "the authorization service's sidecar's span",
    )
    [sidecar] = [s for s in receiver.trace(trace_id) if s.parent_id == check_span.span_id]
    assert (sidecar.service, sidecar.kind) == ("authz-sidecar", "SERVER")
    sent = check_for(m.authz, headers["x-request-id"])[1]["traceparent"]
    assert sent.split("-")[1] == trace_id
    # The refusal is an event on the edge's SERVER span.
    [event] = [e for e in server.events if e.name == "meshgate.ext_authz.refused"]
    assert event.attributes == {
        "meshgate.ext_authz.result": "denied",
        "meshgate.ext_authz.status": 403,
    }
