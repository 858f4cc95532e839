"""Fault injection on real processes: a caller's sidecar (``outbound.faults``) and edge
routes (``routes[].fault``) delaying and aborting real calls to real services.

Timing is asserted from below only (a delay was served at least this long), except
where the point is that a long delay was *not* served in full: there the bound is
the delay itself, tens of seconds away from what is expected."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from demo.processes import wait_until
from tests.integration.harness import App, Mesh, Sidecar, hang_up, http, metrics, rewrite

FAULT = "x-meshgate-fault"
LONG_DELAY_S = 30.0


def client(mesh: Mesh, extra: dict[str, Any]) -> Sidecar:
    """A sidecar for a caller that is not itself in the catalog (the test plays its app)."""
    app = mesh.app("client", "client-1")
    return mesh.sidecar(app, "client-1", extra={"registration": {"enabled": False}, **extra})


def serve(mesh: Mesh, name: str) -> App:
    app = mesh.app(name, f"{name}-1")
    mesh.sidecar(app, f"{name}-1")
    return app


def sees(sidecar: Sidecar, *services: str) -> None:
    """Until the caller's sidecar has a healthy instance of each of ``services``."""

    def healthy() -> bool:
        url = f"http://127.0.0.1:{sidecar.admin}/routes"
        with urllib.request.urlopen(url, timeout=5) as resp:
            upstreams = json.loads(resp.read())["upstreams"]
        return all(any(i["healthy"] for i in upstreams.get(s, [])) for s in services)

    wait_until(healthy, 15, f"caller sees {services}")


def injected(admin: int) -> dict[tuple[str, str], float]:
    """``meshgate_faults_injected_total`` by (kind, service)."""
    scraped = metrics(admin).get("meshgate_faults_injected_total", [])
    return {(labels["kind"], labels["service"]): value for labels, value in scraped}


def sample(admin: int, name: str, **labels: str) -> float:
    found = [v for ls, v in metrics(admin).get(name, []) if labels.items() <= ls.items()]
    return sum(found)


def echoed_headers(body: bytes) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


def test_a_sidecars_injected_aborts_reach_neither_the_service_nor_its_breakers_or_retries(
    mesh: Mesh,
) -> None:
    backend = serve(mesh, "backend")
    other = serve(mesh, "other")
    # A breaker that opens after 3 failures in a row: had it counted the injected
    # aborts, it would refuse the first call once they stop.
    breaker = {"min_calls": 5, "window_size": 10, "consecutive_failures": 3}
    caller = client(
        mesh,
        {
            "outbound": {"faults": {"backend": {"abort": {"status": 503}}}},
            "resilience": {"defaults": {"breaker": breaker, "retries": {"max_attempts": 3}}},
        },
    )
    sees(caller, "backend", "other")
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    for _ in range(10):
        status, headers, body = http(url)
        assert status == 503
        assert headers["content-type"] == "application/problem+json"
        assert headers[FAULT] == "abort"
        assert "x-mesh-attempts" not in headers  # no attempt made, so none retried
        problem = json.loads(body)
        assert problem["type"] == "https://meshgate.dev/problems/fault-injected"
        assert problem["status"] == 503 and problem["service"] == "backend"
        assert problem["request_id"] == headers["x-request-id"]
        assert "trace_id" in problem
    assert backend.stats()["total"] == 0

    # Another service, without faults, is called as ever.
    status, headers, _ = http(f"http://127.0.0.1:{caller.outbound}/other/other/echo")
    assert status == 200 and FAULT not in headers
    assert other.stats()["total"] == 1

    assert injected(caller.admin) == {("abort", "backend"): 10}
    assert sample(caller.admin, "meshgate_retries_total", service="backend") == 0

    # The faults removed by a reload: the first call goes through, the breaker closed.
    rewrite(caller, outbound={"host": "127.0.0.1", "port": caller.outbound})
    view = hang_up(caller, "applied")
    assert view["last_reload"]["applied"] == ["outbound.faults.backend"]
    assert view["restart_pending"] == []
    status, headers, _ = http(url)
    assert status == 200 and FAULT not in headers
    assert backend.stats()["total"] == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{caller.admin}/breakers", timeout=5) as resp:
        assert json.loads(resp.read())["backend"]["state"] == "closed"


def test_a_sidecars_injected_delays_hold_calls_within_their_deadline_and_their_cap(
    mesh: Mesh,
) -> None:
    backend = serve(mesh, "backend")
    fault = {"delay": {"fixed": "400ms"}, "headers": True, "max_active": 1}
    caller = client(mesh, {"outbound": {"faults": {"backend": fault}}})
    sees(caller, "backend")
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"

    started = time.monotonic()
    status, headers, _ = http(url)
    assert status == 200 and headers[FAULT] == "delay"
    assert time.monotonic() - started >= 0.4
    assert backend.stats()["total"] == 1

    # The app asks for a longer delay than its deadline: 504 at the deadline, and the
    # service is never called.
    asked = {
        "X-Meshgate-Fault-Delay-Ms": str(int(LONG_DELAY_S * 1000)),
        "X-Mesh-Deadline-Ms": "300",
    }
    started = time.monotonic()
    status, headers, body = http(url, asked)
    took = time.monotonic() - started
    assert status == 504 and headers[FAULT] == "delay"
    assert json.loads(body)["type"].endswith("/gateway-timeout")
    assert 0.3 <= took < LONG_DELAY_S
    assert backend.stats()["total"] == 1

    # A delay asked for is consumed here, not sent on to the service (and its sidecar).
    status, _, body = http(url, {"X-Meshgate-Fault-Delay-Ms": "1"})
    assert status == 200
    assert "x-meshgate-fault-delay-ms" not in echoed_headers(body)

    # max_active: 1, and three calls at once: one is held, the others go on untouched.
    results: list[tuple[int, dict[str, str], bytes]] = []
    asked = {"X-Meshgate-Fault-Delay-Ms": "3000"}
    threads = [threading.Thread(target=lambda: results.append(http(url, asked))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [200, 200, 200]
    assert sorted(r[1].get(FAULT, "") for r in results) == ["", "", "delay"]
    labels = {"service": "backend", "route": "outbound:backend"}
    assert sample(caller.admin, "meshgate_faults_overflow_total", **labels) == 2
    assert sample(caller.admin, "meshgate_faults_active", **labels) == 0
    # 400 ms, the 30 s cut at the deadline, 1 ms, and the one of three admitted.
    assert injected(caller.admin) == {("delay", "backend"): 4}


def test_edge_route_faults(mesh: Mesh) -> None:
    users = serve(mesh, "users")
    plain = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
    routes = [
        plain,
        {**plain, "prefix": "/api/broken", "fault": {"abort": {"status": 503}}},
        {**plain, "prefix": "/api/slow", "fault": {"delay": {"fixed": "300ms"}}},
        {
            **plain,
            "prefix": "/api/late",
            "timeout": "400ms",
            "fault": {"delay": {"fixed": f"{LONG_DELAY_S}s"}},
        },
        {**plain, "prefix": "/api/chaos", "fault": {"headers": True}},
    ]
    edge = mesh.edge(routes)

    status, headers, body = http(f"{edge.url}/api/broken/echo")
    assert status == 503 and headers[FAULT] == "abort"
    problem = json.loads(body)
    assert problem["type"] == "https://meshgate.dev/problems/fault-injected"
    assert problem["service"] == "users" and problem["request_id"] == headers["x-request-id"]
    assert "trace_id" in problem
    assert users.stats()["total"] == 0

    started = time.monotonic()
    status, headers, _ = http(f"{edge.url}/api/slow/echo")
    assert status == 200 and headers[FAULT] == "delay"
    assert time.monotonic() - started >= 0.3

    started = time.monotonic()
    status, headers, body = http(f"{edge.url}/api/late/echo")
    took = time.monotonic() - started
    assert status == 504 and json.loads(body)["type"].endswith("/gateway-timeout")
    assert 0.4 <= took < LONG_DELAY_S
    assert users.stats()["total"] == 1  # the slow call only

    # Client headers: honoured on the route that allows them, and never sent on.
    assert http(f"{edge.url}/api/chaos/echo", {"X-Meshgate-Fault-Abort": "418"})[0] == 418
    status, headers, body = http(f"{edge.url}/api/users/echo", {"X-Meshgate-Fault-Abort": "418"})
    assert status == 200 and FAULT not in headers
    assert "x-meshgate-fault-abort" not in echoed_headers(body)
    status, _, body = http(f"{edge.url}/api/chaos/echo", {"X-Meshgate-Fault-Delay-Ms": "1"})
    assert status == 200 and "x-meshgate-fault-delay-ms" not in echoed_headers(body)

    scraped = metrics(edge.admin)["meshgate_faults_injected_total"]
    by_route = {(labels["kind"], labels["route"]): value for labels, value in scraped}
    assert by_route == {
        ("abort", "users:/api/broken"): 1,
        ("delay", "users:/api/slow"): 1,
        ("delay", "users:/api/late"): 1,
        ("abort", "users:/api/chaos"): 1,
        ("delay", "users:/api/chaos"): 1,
    }

    # A reload gives the plain route a fault.
    rewrite(edge, routes=[{**plain, "fault": {"abort": {"status": 502}}}, *routes[1:]])
    hang_up(edge, "applied")
    assert http(f"{edge.url}/api/users/echo")[0] == 502
