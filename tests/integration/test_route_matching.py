"""Routes chosen by the request's headers and query on a real edge: routes from the
config (also after a reload changes their conditions) and routes services declare
in Consul meta. The demo apps' echo says which service answered and the path it got."""

from __future__ import annotations

import json
from typing import Any

from demo.processes import wait_until
from tests.integration.harness import Edge, Mesh, consul_api, hang_up, http, rewrite

ORDERS = {"prefix": "/api/orders", "service": "orders", "prefix_rewrite": "/orders"}
V2 = {
    "prefix": "/api/orders",
    "service": "orders-v2",
    "prefix_rewrite": "/orders-v2",
    "match": {"headers": [{"name": "X-Api-Version", "exact": "2"}]},
}
DEBUG = {
    "prefix": "/api/orders",
    "service": "orders-v2",
    "prefix_rewrite": "/orders-v2/debug",
    "match": {"query": [{"name": "debug", "exact": "1"}]},
}
ADMIN = {
    "prefix": "/api/orders/admin",
    "service": "orders-v2",
    "prefix_rewrite": "/orders-v2/admin",
    "methods": ["GET"],
    "match": {"headers": [{"name": "X-Admin", "present": True}]},
}
BETA = {
    "prefix": "/api/beta",
    "service": "orders-v2",
    "prefix_rewrite": "/orders-v2/beta",
    "match": {"headers": [{"name": "X-Beta", "regex": "on|yes"}]},
}


def answered(
    edge: Edge, target: str, headers: dict[str, str] | None = None
) -> tuple[int, str | None]:
    """(status, the path the answering app was asked for: ``/<service>/...``, or None
    when the edge answered itself)."""
    status, response_headers, body = http(f"{edge.url}{target}", headers)
    if response_headers.get("content-type") == "application/problem+json":
        return status, None
    return status, json.loads(body)["path"]


def routes_view(edge: Edge) -> dict[str, Any]:
    status, _, body = http(f"http://127.0.0.1:{edge.admin}/routes")
    assert status == 200
    view: dict[str, Any] = json.loads(body)
    return view


def test_headers_and_query_choose_among_config_routes_and_a_reload_changes_them(
    mesh: Mesh,
) -> None:
    mesh.sidecar(mesh.app("orders", "orders-1"), "orders-1")
    mesh.sidecar(mesh.app("orders-v2", "orders-v2-1"), "orders-v2-1")
    edge = mesh.edge([ORDERS, V2, DEBUG, ADMIN, BETA])

    # One prefix, three routes: the two with conditions first, in config order.
    assert answered(edge, "/api/orders/echo") == (200, "/orders/echo")
    assert answered(edge, "/api/orders/echo", {"X-Api-Version": "2"}) == (200, "/orders-v2/echo")
    assert answered(edge, "/api/orders/echo", {"x-api-version": "2"}) == (200, "/orders-v2/echo")
    assert answered(edge, "/api/orders/echo", {"X-Api-Version": "3"}) == (200, "/orders/echo")
    assert answered(edge, "/api/orders/echo?debug=1") == (200, "/orders-v2/debug/echo?debug=1")
    assert answered(edge, "/api/orders/echo?a=b&debug=%31") == (
        200,
        "/orders-v2/debug/echo?a=b&debug=%31",
    )
    assert answered(edge, "/api/orders/echo?debug=0") == (200, "/orders/echo?debug=0")
    assert answered(edge, "/api/orders/echo?debug") == (200, "/orders/echo?debug")
    both = answered(edge, "/api/orders/echo?debug=1", {"X-Api-Version": "2"})
    assert both == (200, "/orders-v2/echo?debug=1")  # V2 comes first in the file

    # A deeper route whose condition fails falls through to the shorter prefix; when
    # it holds, the route decides, and its methods give a 405.
    assert answered(edge, "/api/orders/admin/x") == (200, "/orders/admin/x")
    assert answered(edge, "/api/orders/admin/x", {"X-Admin": ""}) == (200, "/orders-v2/admin/x")
    admin = f"{edge.url}/api/orders/admin/x"
    status, headers, body = http(admin, {"X-Admin": "1"}, method="DELETE")
    assert (status, headers["allow"], json.loads(body)["status"]) == (405, "GET", 405)
    status, _, body = http(admin, method="DELETE")
    assert (status, json.loads(body)["path"]) == (200, "/orders/admin/x")

    # Nothing under a route whose conditions fail: 404.
    assert answered(edge, "/api/beta/1", {"X-Beta": "yes"}) == (200, "/orders-v2/beta/1")
    assert answered(edge, "/api/beta/1", {"X-Beta": "maybe"}) == (404, None)
    assert answered(edge, "/api/beta/1") == (404, None)

    view = routes_view(edge)
    assert view["conflicts"] == []
    # /routes lists the routes in the order they are tried, with their conditions.
    described = [(r["service"], r["match"]) for r in view["routes"] if r["prefix"] == "/api/orders"]
    assert described == [
        ("orders-v2", {"headers": [{"name": "x-api-version", "exact": "2"}], "query": []}),
        ("orders-v2", {"headers": [], "query": [{"name": "debug", "exact": "1"}]}),
        ("orders", None),
    ]

    # SIGHUP: the routes are rebuilt with the new conditions.
    v3 = {**V2, "match": {"headers": [{"name": "X-Api-Version", "regex": "[34]"}]}}
    rewrite(edge, routes=[ORDERS, v3])
    view = hang_up(edge, "applied")
    assert view["last_reload"]["applied"] == ["routes"]
    assert answered(edge, "/api/orders/echo", {"X-Api-Version": "4"}) == (200, "/orders-v2/echo")
    assert answered(edge, "/api/orders/echo", {"X-Api-Version": "2"}) == (200, "/orders/echo")
    assert answered(edge, "/api/orders/echo?debug=1") == (200, "/orders/echo?debug=1")
    assert answered(edge, "/api/beta/1", {"X-Beta": "yes"}) == (404, None)


def test_a_service_declares_header_conditions_in_consul_meta(mesh: Mesh) -> None:
    route = {"meshgate-route": "/api/orders"}
    orders = {**route, "meshgate-route-rewrite": "/orders"}
    mesh.sidecar(mesh.app("orders", "orders-1"), "orders-1", extra={"service": {"meta": orders}})
    v2 = {
        **route,
        "meshgate-route-rewrite": "/orders-v2",
        "meshgate-route-match-headers": "X-Api-Version=2, X-Beta",
    }
    mesh.sidecar(
        mesh.app("orders-v2", "orders-v2-1"), "orders-v2-1", extra={"service": {"meta": v2}}
    )
    # A service whose conditions cannot be read: reported, and not routed at all.
    consul_api(
        mesh.consul,
        "PUT",
        "/v1/agent/service/register",
        {
            "Name": "reports",
            "ID": "reports-1",
            "Address": "127.0.0.1",
            "Port": 9,
            "Meta": {"meshgate-route": "/api/reports", "meshgate-route-match-headers": "X Beta"},
        },
    )
    edge = mesh.edge([])  # routes only from Consul meta
    wait_until(lambda: len(routes_view(edge)["meta_problems"]) == 1, 10, "the reports service")

    assert answered(edge, "/api/orders/echo", {"X-Api-Version": "2", "X-Beta": ""}) == (
        200,
        "/orders-v2/echo",
    )
    assert answered(edge, "/api/orders/echo", {"X-Api-Version": "2"}) == (200, "/orders/echo")
    assert answered(edge, "/api/orders/echo", {"X-Beta": "1"}) == (200, "/orders/echo")
    assert answered(edge, "/api/orders/echo") == (200, "/orders/echo")
    assert answered(edge, "/api/reports/1", {"X-Beta": "1"}) == (404, None)

    view = routes_view(edge)
    assert view["conflicts"] == []
    assert [(r["service"], r["match"]) for r in view["routes"]] == [
        (
            "orders-v2",
            {
                "headers": [
                    {"name": "x-api-version", "exact": "2"},
                    {"name": "x-beta", "present": True},
                ],
                "query": [],
            },
        ),
        ("orders", None),
    ]
    [problem] = view["meta_problems"]
    assert (problem["service"], problem["key"]) == ("reports", "meshgate-route-match-headers")
    assert "'X Beta' in 'X Beta' is not a valid header name" in problem["problem"]
