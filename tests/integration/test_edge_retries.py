"""Retries at the edge (``routes[].retries``): real Consul, a real edge, real app instances.

What is shown: beside a healthy instance, one answering 503 to everything makes no
GET fail on a route with retries (the retry goes to the other instance; the answer
says so in ``X-Mesh-Attempts``, the metrics count it by reason); a POST without an
``Idempotency-Key`` is not retried after a 503, one with it is, and a PUT's body is
sent again whole; backpressure (503 with ``Retry-After``) goes back at once; a route
without ``retries`` still makes one attempt; the route's timeout bounds the attempts
(504 at it); a spent budget stops retries; with outlier detection each attempt's
outcome still counts, so the failing instance is ejected while clients see no error.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from demo.processes import wait_until
from tests.integration.harness import App, Edge, Mesh, consul_api, hang_up, http, metrics, rewrite

ROUTE = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
ROUTE_NAME = "users:/api/users"
RETRIES = {"max_attempts": 3, "backoff_base": "1ms", "backoff_max": "5ms"}


def register(mesh: Mesh, app: App) -> None:
    """``app`` in Consul as an instance of its service, with no check (so healthy)."""
    consul_api(
        mesh.consul,
        "PUT",
        "/v1/agent/service/register",
        {"Name": app.name, "ID": app.instance, "Address": "127.0.0.1", "Port": app.port},
    )


def send(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One request on a new connection: (status, lower-cased headers, JSON body)."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            status, head, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, exc.headers, exc.read()
    return status, {k.lower(): v for k, v in head.items()}, json.loads(raw)


def two_instances(
    mesh: Mesh, route: dict[str, Any], extra: dict[str, Any] | None = None
) -> tuple[App, App, Edge, str]:
    """Instances ``users-good`` and ``users-bad`` behind an edge with ``route``; once
    both take requests, the bad one answers 503 (no ``Retry-After``) to everything but
    its health path: (good, bad, the edge, the URL)."""
    good, bad = mesh.app("users", "users-good"), mesh.app("users", "users-bad")
    register(mesh, good)
    register(mesh, bad)
    edge = mesh.edge([route], extra=extra)
    url = f"{edge.url}/api/users/echo"
    wait_until(
        lambda: (
            {json.loads(http(url)[2]).get("instance") for _ in range(4)}
            == {"users-good", "users-bad"}
        ),
        10,
        "both instances in the edge's catalog",
    )
    bad.faults(error_rate=1.0, error_status=503)
    return good, bad, edge, url


def sample(edge: Edge, name: str, **labels: str) -> float:
    """The value of the edge's series ``name`` with these labels (0 when absent)."""
    for found, value in metrics(edge.admin).get(name, []):
        if all(found.get(k) == v for k, v in labels.items()):
            return value
    return 0.0


def test_a_get_answered_503_is_retried_on_the_other_instance(mesh: Mesh) -> None:
    _good, bad, edge, url = two_instances(mesh, {**ROUTE, "retries": RETRIES})
    before = bad.stats()["total"]

    seen = [send(url) for _ in range(12)]

    assert [status for status, _, _ in seen] == [200] * 12, seen
    assert {body["instance"] for _, _, body in seen} == {"users-good"}
    attempts = [int(head["x-mesh-attempts"]) for _, head, _ in seen]
    assert set(attempts) <= {1, 2}, attempts
    retried = attempts.count(2)
    # Round robin sends about half of the first attempts to the broken instance.
    assert retried >= 3, attempts
    assert bad.stats()["total"] - before == retried
    assert sample(edge, "meshgate_route_retries_total", route=ROUTE_NAME, reason="503") == retried
    assert sample(edge, "meshgate_route_retry_budget_exhausted_total") == 0


def test_only_idempotent_requests_are_retried_after_a_503(mesh: Mesh) -> None:
    _good, _bad, edge, url = two_instances(mesh, {**ROUTE, "retries": RETRIES})

    # POST without an Idempotency-Key: the app may have acted on it, so the 503 goes back.
    posts = [send(url, "POST", b'{"n": 1}', {"Content-Type": "application/json"}) for _ in range(8)]
    statuses = [status for status, _, _ in posts]
    assert 503 in statuses and 200 in statuses, statuses
    assert all(head["x-mesh-attempts"] == "1" for _, head, _ in posts), posts
    assert sample(edge, "meshgate_route_retries_total", route=ROUTE_NAME) == 0

    # With one, the same POST is retried, its body sent again whole.
    keyed = [
        send(url, "POST", b'{"n": 2}', {"Idempotency-Key": f"k{i}", "Content-Type": "a/b"})
        for i in range(8)
    ]
    assert [status for status, _, _ in keyed] == [200] * 8, keyed
    assert {body["body_bytes"] for _, _, body in keyed} == {8}
    # A PUT is idempotent: retried with its 20 KB body.
    puts = [send(url, "PUT", b"x" * 20_000) for _ in range(6)]
    assert [status for status, _, _ in puts] == [200] * 6, puts
    assert {body["body_bytes"] for _, _, body in puts} == {20_000}
    assert any(head["x-mesh-attempts"] == "2" for _, head, _ in keyed + puts)


def test_backpressure_goes_back_at_once(mesh: Mesh) -> None:
    _good, bad, edge, url = two_instances(mesh, {**ROUTE, "retries": RETRIES})
    bad.faults(error_rate=1.0, error_status=503, retry_after=7)

    seen = [send(url) for _ in range(8)]

    refused = [(status, head) for status, head, _ in seen if status == 503]
    assert refused, seen
    assert all(head["retry-after"] == "7" and head["x-mesh-attempts"] == "1" for _, head in refused)
    assert sample(edge, "meshgate_route_retries_total", route=ROUTE_NAME) == 0


def test_a_route_without_retries_makes_one_attempt(mesh: Mesh) -> None:
    _good, _bad, edge, url = two_instances(mesh, ROUTE)

    seen = [send(url) for _ in range(8)]

    statuses = [status for status, _, _ in seen]
    assert statuses.count(503) >= 2 and statuses.count(200) >= 2, statuses
    assert all("x-mesh-attempts" not in head for _, head, _ in seen)
    assert "meshgate_route_retries_total" not in metrics(edge.admin)


def test_retries_come_and_go_with_a_reload_and_show_at_routes(mesh: Mesh) -> None:
    _good, _bad, edge, url = two_instances(mesh, ROUTE)
    assert 503 in [send(url)[0] for _ in range(6)]

    rewrite(edge, routes=[{**ROUTE, "retries": RETRIES}])
    hang_up(edge, "applied")

    assert [send(url)[0] for _ in range(8)] == [200] * 8
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/routes", timeout=5) as resp:
        [route] = json.loads(resp.read())["routes"]
    assert route["retries"]["max_attempts"] == 3
    assert route["retries"]["retry_on"] == ["connect-failure", "reset", "timeout", 502, 503, 504]

    rewrite(edge, routes=[ROUTE])
    hang_up(edge, "applied", 2)
    assert 503 in [send(url)[0] for _ in range(6)]


def test_the_routes_timeout_bounds_the_attempts(mesh: Mesh) -> None:
    retries = {**RETRIES, "max_attempts": 10, "per_try_timeout": "300ms", "retry_on": ["timeout"]}
    good, bad, edge, url = two_instances(mesh, {**ROUTE, "timeout": "1s", "retries": retries})
    good.faults(latency_ms=5000)
    bad.faults(latency_ms=5000)

    started = time.monotonic()
    status, head, body = send(url)
    took = time.monotonic() - started

    assert status == 504, body
    assert took >= 0.9, took  # the route's second, not the first attempt's 300 ms
    assert took < 4.5, took  # nor the app's 5 s, nor 10 attempts of 300 ms
    assert 2 <= int(head["x-mesh-attempts"]) <= 4, head
    assert sample(edge, "meshgate_route_retries_total", route=ROUTE_NAME, reason="timeout") >= 1


def test_a_spent_budget_stops_retries(mesh: Mesh) -> None:
    # One retry per 10 s, whatever the traffic.
    budget = {"budget_ratio": 0, "budget_min_per_second": 0.1, "budget_window": "10s"}
    _good, _bad, edge, url = two_instances(mesh, {**ROUTE, "retries": {**RETRIES, **budget}})

    seen = [send(url) for _ in range(10)]

    attempts = [int(head["x-mesh-attempts"]) for _, head, _ in seen]
    assert attempts.count(2) == 1, attempts
    failed = [status for status, _, _ in seen].count(503)
    assert failed >= 2, seen  # the broken instance's later turns, no longer retried
    assert sample(edge, "meshgate_route_retries_total", route=ROUTE_NAME) == 1
    exhausted = sample(edge, "meshgate_route_retry_budget_exhausted_total", route=ROUTE_NAME)
    assert exhausted == failed


def test_with_outlier_detection_every_attempt_counts(mesh: Mesh) -> None:
    outliers = {
        "outlier_detection": {
            "enabled": True,
            "breaker": {"consecutive_failures": 3, "open_base": "30s", "open_max": "30s"},
        }
    }
    _good, bad, edge, url = two_instances(mesh, {**ROUTE, "retries": RETRIES}, outliers)

    seen = [send(url) for _ in range(12)]

    # Clients saw no failure, yet the failed attempts ejected the broken instance.
    assert [status for status, _, _ in seen] == [200] * 12, seen
    assert bad.stats()["requests"].get("GET /users/echo", 0) >= 3
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/outliers", timeout=5) as resp:
        view = json.loads(resp.read())
    assert view["services"]["users"]["instances"]["users-bad"]["ejected"] is True
    # Ejected, it takes no more first attempts: the last requests took one attempt each.
    assert [head["x-mesh-attempts"] for _, head, _ in seen[-4:]] == ["1"] * 4
