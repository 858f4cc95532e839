"""Client addresses allowed and refused by a real edge: the edge's list, a route's list,
what a refusal looks like and counts, and a reload that changes a route's list.

Every client here is 127.0.0.1, so the lists are written to include or exclude it."""

from __future__ import annotations

import json

from tests.integration.harness import Mesh, hang_up, http, metrics, rewrite

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
LOCAL_ONLY = {"allow": ["127.0.0.0/8"]}
NOT_LOCAL = {"allow": ["10.0.0.0/8"]}


def refusals(admin: int) -> dict[str, float]:
    scraped = metrics(admin).get("meshgate_address_refusals_total", [])
    return {labels["scope"]: value for labels, value in scraped}


def test_edge_and_route_lists(mesh: Mesh) -> None:
    app = mesh.app("users", "users-1")
    mesh.sidecar(app, "users-1")
    admin_route = {**USERS, "prefix": "/admin/users", "ip_access": NOT_LOCAL}
    edge = mesh.edge([USERS, admin_route], extra={"ip_access": LOCAL_ONLY})

    assert http(f"{edge.url}/api/users/echo")[0] == 200
    status, headers, body = http(f"{edge.url}/admin/users/echo")
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["type"].endswith("address-refused")
    assert problem["detail"] == "requests from 127.0.0.1 may not use this route"
    assert app.stats()["requests"] == {"GET /users/echo": 1}  # the refusal never reached it
    assert refusals(edge.admin) == {"edge": 0, "route": 1}

    # The route's list opened to this address, by a reload.
    rewrite(edge, routes=[USERS, {**admin_route, "ip_access": LOCAL_ONLY}])
    hang_up(edge, "applied")
    assert http(f"{edge.url}/admin/users/echo")[0] == 200

    # The edge's own list closed to it: every path refused, routes or not.
    rewrite(edge, ip_access={"deny": ["127.0.0.1"]})
    view = hang_up(edge, "applied", 2)
    assert view["last_reload"]["applied"] == ["ip_access.allow", "ip_access.deny"]
    for path in ("/api/users/echo", "/no/such/route"):
        status, _, body = http(f"{edge.url}{path}")
        assert status == 403
        assert json.loads(body)["detail"] == "requests from 127.0.0.1 may not use this gateway"
    assert refusals(edge.admin) == {"edge": 2, "route": 1}
