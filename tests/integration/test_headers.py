"""Configured header changes through a real edge, sidecar and demo app: the edge's own
(on every answer, its 404 too), a route's, and a reload that changes them."""

from __future__ import annotations

import json

from tests.integration.harness import Mesh, hang_up, http, rewrite

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
EDGE_HEADERS = {
    "request": {"set": {"X-Env": "prod"}},
    "response": {"set": {"Strict-Transport-Security": "max-age=31536000", "Server": "gateway"}},
}
ROUTE_HEADERS = {
    "request": {"remove": ["X-Debug"]},
    "response": {"set": {"Server": "users-api"}, "remove": ["X-Content-SHA256"]},
}


def sent_to_app(body: bytes) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in json.loads(body)["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


def test_edge_and_route_header_changes(mesh: Mesh) -> None:
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    plain = {**USERS, "prefix": "/plain/users"}
    edge = mesh.edge([{**USERS, "headers": ROUTE_HEADERS}, plain], extra={"headers": EDGE_HEADERS})
    spoof = {"X-Env": "dev", "X-Debug": "1"}

    status, headers, body = http(f"{edge.url}/api/users/echo", spoof)
    assert status == 200
    app = sent_to_app(body)
    assert app["x-env"] == ["prod"]  # replaced, not appended
    assert "x-debug" not in app
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert headers["server"] == "users-api"  # the route's set wins over the edge's

    status, headers, body = http(f"{edge.url}/plain/users/echo", spoof)
    app = sent_to_app(body)
    assert (app["x-env"], app["x-debug"]) == (["prod"], ["1"])  # the edge's changes only
    assert headers["server"] == "gateway"

    status, headers, _ = http(f"{edge.url}/api/users/download?mb=1")
    assert status == 200
    assert "x-content-sha256" not in headers
    status, headers, _ = http(f"{edge.url}/plain/users/download?mb=1")
    assert len(headers["x-content-sha256"]) == 64

    status, headers, _ = http(f"{edge.url}/nowhere")  # the edge's own answer
    assert status == 404
    assert headers["strict-transport-security"] == "max-age=31536000"

    rewrite(edge, headers=None)  # the section removed: the edge's changes stop
    view = hang_up(edge, "applied")
    assert view["last_reload"]["applied"] == ["headers"]
    status, headers, body = http(f"{edge.url}/plain/users/echo", spoof)
    assert sent_to_app(body)["x-env"] == ["dev"]
    assert "strict-transport-security" not in headers
