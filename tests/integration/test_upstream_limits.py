"""The edge's ``upstream_limits``: real Consul, a real edge, real apps behind their sidecars.

What is shown: with ``users`` limited to 2 requests in flight and its app slowed
down, of 5 requests at once 2 reach the app and 3 are answered 503 by the edge
(a problem body, ``Retry-After``), never reaching it; ``orders``, on its own
limit, answers meanwhile; the refusals are counted in ``/metrics`` and shown at
``/upstream-limits``, where nothing stays in flight once the answers are in; a
reload lifts the limit.
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from demo.processes import wait_until
from tests.integration.harness import Edge, Mesh, hang_up, http, metrics, rewrite

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
ORDERS = {"prefix": "/api/orders", "service": "orders", "prefix_rewrite": "/orders"}


def limits_view(edge: Edge) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/upstream-limits") as resp:
        view: dict[str, Any] = json.loads(resp.read())
    return view


def in_flight(edge: Edge, service: str) -> int:
    return int(limits_view(edge)["services"].get(service, {}).get("active", 0))


def test_requests_over_a_services_limit_are_refused_at_once_and_others_pass(mesh: Mesh) -> None:
    users = mesh.app("users", "users-1")
    mesh.sidecar(users, "users-1")
    mesh.sidecar(mesh.app("orders", "orders-1"), "orders-1")
    edge = mesh.edge(
        [USERS, ORDERS], {"upstream_limits": {"max_requests": 10, "services": {"users": 2}}}
    )
    users.faults(latency_ms=2000)
    before = int(users.stats()["requests"].get("GET /users/echo", 0))

    with ThreadPoolExecutor(5) as pool:
        calls = [pool.submit(http, f"{edge.url}/api/users/echo") for _ in range(5)]
        wait_until(lambda: in_flight(edge, "users") == 2, 10, "two users requests in flight")
        assert http(f"{edge.url}/api/orders/echo")[0] == 200  # its own limit, not users'
        answers = [call.result() for call in calls]

    assert sorted(status for status, _, _ in answers) == [200, 200, 503, 503, 503]
    for status, headers, body in answers:
        if status != 503:
            continue
        assert headers["content-type"] == "application/problem+json"
        assert headers["retry-after"] == "1"
        problem = json.loads(body)
        assert problem["type"].endswith("/upstream-overloaded")
        assert (problem["service"], problem["limit"]) == ("users", 2)
    # The refused requests never reached the app.
    assert int(users.stats()["requests"]["GET /users/echo"]) == before + 2

    refused = {
        labels["service"]: value
        for labels, value in metrics(edge.admin)["meshgate_upstream_overflow_total"]
    }
    assert refused == {"users": 3}
    view = limits_view(edge)
    assert view["enabled"] is True and view["max_requests"] == 10
    assert view["services"]["users"] == {"limit": 2, "active": 0, "overflows": 3}

    # A reload lifts the limit: five at once all pass.
    rewrite(edge, upstream_limits={})
    hang_up(edge, "applied")
    assert limits_view(edge)["enabled"] is False
    users.faults(latency_ms=300)
    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(lambda _: http(f"{edge.url}/api/users/echo")[0], range(5)))
    assert statuses == [200] * 5
