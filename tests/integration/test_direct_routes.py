"""Routes a real edge answers itself: redirects and fixed responses, beside a proxied route,
through the filters every request takes, shown at ``/routes`` and counted; a reload adds
one to a table that had none."""

from __future__ import annotations

import asyncio
import json
from http.client import HTTPConnection
from pathlib import Path

from tests.integration.harness import Edge, Mesh, hang_up, http, metrics, raw_request, rewrite

ORDERS = {"prefix": "/api/orders", "service": "orders", "prefix_rewrite": "/orders"}
MOVED = {"prefix": "/v1/orders", "redirect": {"prefix_rewrite": "/api/orders", "code": 308}}
DOCS = {
    "prefix": "/docs",
    "redirect": {"scheme": "https", "host": "docs.example", "path": "/", "strip_query": True},
}
HEALTH = {
    "path": "/healthz",
    "methods": ["GET", "HEAD"],
    "direct_response": {"status": 200, "body": "ok\n"},
    "headers": {"response": {"set": {"Cache-Control": "no-store"}}},
}
CLOSED = {
    "prefix": "/closed",
    "direct_response": {"status": 200, "body": "never seen"},
    "ip_access": {"allow": ["10.0.0.0/8"]},
}


def fetch(
    edge: Edge, target: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request without following redirects: (status, lower-cased headers, body)."""
    connection = HTTPConnection("127.0.0.1", edge.port, timeout=10)
    try:
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_redirects_and_responses_beside_a_proxied_route(mesh: Mesh, tmp_path: Path) -> None:
    app = mesh.app("orders", "orders-1")
    mesh.sidecar(app, "orders-1")
    page = tmp_path / "maintenance.html"
    page.write_bytes(b"<h1>Back soon</h1>\n")
    maintenance = {
        "prefix": "/shop",
        "direct_response": {"status": 503, "body_file": str(page), "content_type": "text/html"},
    }
    # An exact path beside the prefix of the same text: it takes that path alone.
    listing = {"path": "/api/orders", "service": "orders", "prefix_rewrite": "/orders/list"}
    edge = mesh.edge([ORDERS, MOVED, DOCS, HEALTH, CLOSED, maintenance, listing])
    before = app.stats()

    # The proxied routes still reach their service.
    status, _, body = fetch(edge, "/api/orders/echo")
    assert status == 200 and json.loads(body)["path"] == "/orders/echo"
    status, _, body = fetch(edge, "/api/orders")
    assert status == 200 and json.loads(body)["path"] == "/orders/list"

    # A redirect keeps the request's host, port and query, with the prefix replaced ...
    status, headers, body = fetch(edge, "/v1/orders/7?expand=items", "POST")
    assert status == 308
    assert headers["location"] == f"http://127.0.0.1:{edge.port}/api/orders/7?expand=items"
    assert body == b"" and headers["content-length"] == "0"
    assert headers["x-request-id"]  # the edge's own headers, as on every answer
    # ... the path normalised first, as routing saw it ...
    status, headers, _ = fetch(edge, "/v1/./orders/%37")
    assert headers["location"] == f"http://127.0.0.1:{edge.port}/api/orders/7"
    # ... and one with its own scheme and host drops the request's port and, here, query.
    status, headers, _ = fetch(edge, "/docs/guide?x=1", headers={"Host": "shop.example:8080"})
    assert (status, headers["location"]) == (301, "https://docs.example/")

    # A fixed response, with the route's header changes; HEAD gets its head alone.
    status, headers, body = fetch(edge, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    status, headers, body = fetch(edge, "/healthz", "HEAD")
    assert (status, headers["content-length"], body) == (200, "3", b"")
    # An exact path: nothing below it.
    assert fetch(edge, "/healthz/x")[0] == 404
    # The route's methods hold as for any route.
    status, headers, body = fetch(edge, "/healthz", "DELETE")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert json.loads(body)["type"].endswith("/method-not-allowed")
    # A body from a file, with its type.
    status, headers, body = fetch(edge, "/shop/cart")
    assert (status, headers["content-type"], body) == (503, "text/html", page.read_bytes())

    # The filters before the answer run: an address list refuses as it would a proxied route.
    status, headers, body = fetch(edge, "/closed")
    assert status == 403 and headers["content-type"] == "application/problem+json"
    assert b"never seen" not in body

    # No service was asked for any of these.
    after = app.stats()
    assert after["total"] == before["total"] + 2, (before, after)

    # /routes shows what each answers, with no instances; metrics count them by route.
    status, _, body = http(f"http://127.0.0.1:{edge.admin}/routes")
    routes = {r["name"]: r for r in json.loads(body)["routes"]}
    assert routes["redirect:/v1/orders"]["service"] is None
    assert routes["redirect:/v1/orders"]["redirect"]["prefix_rewrite"] == "/api/orders"
    assert routes["redirect:/v1/orders"]["instances"] == []
    assert routes["response:/shop"]["direct_response"] == {
        "status": 503,
        "body_bytes": len(page.read_bytes()),
        "content_type": "text/html",
    }
    counted = {
        (labels["route"], labels["code_class"]): value
        for labels, value in metrics(edge.admin)["meshgate_requests_total"]
        if labels["role"] == "edge"
    }
    assert counted[("redirect:/v1/orders", "3xx")] == 2
    assert counted[("response:=/healthz", "2xx")] == 2
    assert counted[("response:=/healthz", "4xx")] == 1  # the 405
    assert counted[("orders:/api/orders", "2xx")] == 1
    assert counted[("orders:=/api/orders", "2xx")] == 1


def test_a_redirect_needs_a_host_it_can_use(mesh: Mesh) -> None:
    edge = mesh.edge([MOVED, DOCS])
    # HTTP/1.0 without Host: no authority to redirect to, a problem instead ...
    status, headers, body = asyncio.run(
        raw_request(edge.port, b"GET /v1/orders/7 HTTP/1.0\r\n\r\n")
    )
    assert status == 400 and headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["type"].endswith("/bad-host")
    assert problem["detail"] == "a valid Host header is required to redirect"
    # ... and one that could smuggle text into the Location gets the same.
    status, _, _ = asyncio.run(
        raw_request(edge.port, b"GET /v1/orders HTTP/1.1\r\nHost: a@evil.example\r\n\r\n")
    )
    assert status == 400
    # A redirect with a host of its own needs none.
    status, headers, _ = asyncio.run(raw_request(edge.port, b"GET /docs HTTP/1.0\r\n\r\n"))
    assert (status, headers["location"]) == (301, "https://docs.example/")


def test_a_reload_adds_a_redirect_to_a_table_without_one(mesh: Mesh) -> None:
    mesh.sidecar(mesh.app("orders", "orders-1"), "orders-1")
    edge = mesh.edge([ORDERS])
    assert fetch(edge, "/v1/orders/7")[0] == 404

    rewrite(edge, routes=[ORDERS, MOVED])
    hang_up(edge, "applied")
    status, headers, _ = fetch(edge, "/v1/orders/7")
    assert (status, headers["location"]) == (308, f"http://127.0.0.1:{edge.port}/api/orders/7")
    assert fetch(edge, "/api/orders/echo")[0] == 200

    # A route turned from a redirect into a proxied one.
    proxied = {"prefix": "/v1/orders", "service": "orders", "prefix_rewrite": "/orders/v1"}
    rewrite(edge, routes=[ORDERS, proxied])
    hang_up(edge, "applied", 2)
    status, _, body = fetch(edge, "/v1/orders/echo")
    assert status == 200 and json.loads(body)["path"] == "/orders/v1/echo"
