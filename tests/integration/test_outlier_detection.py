"""The edge's passive outlier detection: real Consul, a real edge, two real app instances.

What is shown: an instance that answers 500 to every request while Consul
still sees it healthy (its health path passes) is ejected by the edge after
``consecutive_failures`` failures and gets no more traffic; the ejection is
counted and shown at ``/outliers``; once it is mended and its ejection time has
passed, a trial request brings it back into rotation. Without the section, the
same broken instance keeps taking its share of the requests.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from typing import Any

from demo.processes import wait_until
from tests.integration.harness import (
    App,
    Edge,
    Mesh,
    consul_api,
    descendants,
    hang_up,
    http,
    metrics,
    passing_ids,
    rewrite,
)

ROUTES = [{"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}]
# Three failures in a row eject for 3 s (no jitter, so the test knows when; long
# enough for the checks made while it is out, on a slow machine too).
BREAKER: dict[str, Any] = {
    "consecutive_failures": 3,
    "open_base": "3s",
    "open_max": "3s",
    "open_jitter": 0,
    "half_open_trials": 1,
}
OUTLIERS: dict[str, Any] = {"outlier_detection": {"enabled": True, "breaker": BREAKER}}


def register(mesh: Mesh, app: App) -> None:
    """``app`` in Consul as an instance of its service, with no check (so healthy)."""
    consul_api(
        mesh.consul,
        "PUT",
        "/v1/agent/service/register",
        {"Name": app.name, "ID": app.instance, "Address": "127.0.0.1", "Port": app.port},
    )


def answers(url: str, count: int) -> list[tuple[int, str | None]]:
    """``count`` requests, one after another: (status, the instance that answered 200)."""
    out = []
    for _ in range(count):
        status, _, body = http(url)
        out.append((status, json.loads(body)["instance"] if status == 200 else None))
    return out


def two_instances(mesh: Mesh, extra: dict[str, Any] | None) -> tuple[App, Edge, str]:
    """Instances ``users-good`` and ``users-bad`` (answering 500 to everything but its
    health path from now on) behind an edge: (the bad app, the edge, the URL)."""
    good, bad = mesh.app("users", "users-good"), mesh.app("users", "users-bad")
    register(mesh, good)
    register(mesh, bad)
    edge = mesh.edge(ROUTES, extra=extra)
    url = f"{edge.url}/api/users/echo"
    wait_until(
        lambda: {i for _, i in answers(url, 4)} == {"users-good", "users-bad"},
        10,
        "both instances in the edge's catalog",
    )
    bad.faults(error_rate=1.0, error_status=500)
    return bad, edge, url


def outliers_view(admin: int) -> dict[str, Any]:
    """``/outliers`` of an edge with outlier detection on: its services with instances
    out of good standing."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/outliers", timeout=5) as resp:
        view: dict[str, Any] = json.loads(resp.read())
    services: dict[str, Any] = view["services"]
    assert view["enabled"] is True
    return services


def test_an_instance_failing_every_request_is_ejected_then_readmitted(mesh: Mesh) -> None:
    bad, edge, url = two_instances(mesh, OUTLIERS)

    # Round robin alternates: the broken instance fails three times in a row, then
    # takes no more requests.
    seen = answers(url, 20)
    assert [s for s, _ in seen].count(500) == 3, seen
    assert [i for _, i in seen[6:]] == ["users-good"] * 14, seen
    # Consul still lists it as healthy: only the edge's own evidence took it out.
    assert passing_ids(mesh.consul, "users") == {"users-good", "users-bad"}
    view = outliers_view(edge.admin)["users"]
    assert view["ejections"] == 1
    assert view["instances"]["users-bad"]["ejected"] is True
    samples = metrics(edge.admin)
    assert samples["meshgate_outlier_ejections_total"] == [({"service": "users"}, 1.0)]
    assert samples["meshgate_outlier_ejected_instances"] == [({"service": "users"}, 1.0)]

    # Mended, and its ejection over: one trial request succeeds and it is back in
    # rotation, taking its share again.
    bad.faults(error_rate=0.0)
    served_before = bad.stats()["total"]
    time.sleep(3.1)
    wait_until(
        lambda: Counter(i for _, i in answers(url, 6)) == {"users-good": 3, "users-bad": 3},
        10,
        "users-bad back in round robin",
    )
    assert bad.stats()["total"] > served_before
    assert outliers_view(edge.admin)["users"]["instances"] == {}
    samples = metrics(edge.admin)
    assert samples["meshgate_outlier_ejected_instances"] == [({"service": "users"}, 0.0)]


def test_still_broken_after_its_ejection_the_instance_is_ejected_again_for_longer(
    mesh: Mesh,
) -> None:
    growing = {"outlier_detection": {**OUTLIERS["outlier_detection"]}}
    growing["outlier_detection"]["breaker"] = {
        **OUTLIERS["outlier_detection"]["breaker"],
        "open_max": "10s",
    }
    bad, edge, url = two_instances(mesh, growing)
    answers(url, 8)  # ejected after its third failure
    served = bad.stats()["total"]
    time.sleep(3.1)
    # One trial request reaches it, fails, and it is out again, now for 6 s.
    seen = answers(url, 10)
    assert [s for s, _ in seen].count(500) == 1, seen
    assert bad.stats()["total"] == served + 1
    view = outliers_view(edge.admin)["users"]["instances"]["users-bad"]
    assert view["consecutive_ejections"] == 2
    assert 3.0 < view["retry_after_s"] <= 6.0


def test_an_instance_asking_for_less_load_is_avoided_not_ejected(mesh: Mesh) -> None:
    """A 503 with ``Retry-After`` (a sidecar's inbound cap, an app shedding load) goes
    back to the caller and keeps the instance out of rotation for that long, without
    counting as a failure."""
    bad, edge, url = two_instances(mesh, OUTLIERS)
    bad.faults(error_rate=1.0, error_status=503, retry_after=2)
    seen = answers(url, 12)
    assert [s for s, _ in seen].count(503) == 1, seen  # then avoided for 2 s
    view = outliers_view(edge.admin)["users"]
    assert view["ejections"] == 0 and view["instances"] == {}
    assert 0 < view["avoided"]["users-bad"] <= 2
    time.sleep(2.1)
    seen = answers(url, 4)
    assert [s for s, _ in seen].count(503) == 1, seen  # tried again, avoided again
    assert "meshgate_outlier_ejections_total" not in metrics(edge.admin)


def test_a_service_exempted_by_its_override_is_never_ejected(mesh: Mesh) -> None:
    exempt = {"outlier_detection": {**OUTLIERS["outlier_detection"], "services": {}}}
    exempt["outlier_detection"]["services"] = {"users": {"enabled": False}}
    _, edge, url = two_instances(mesh, exempt)
    seen = answers(url, 20)
    assert [s for s, _ in seen].count(500) == 10, seen
    assert outliers_view(edge.admin) == {}


def test_without_outlier_detection_the_broken_instance_keeps_its_share_until_a_reload(
    mesh: Mesh,
) -> None:
    _, edge, url = two_instances(mesh, None)
    seen = answers(url, 20)
    assert [s for s, _ in seen].count(500) == 10, seen
    assert "meshgate_outlier_ejections_total" not in metrics(edge.admin)
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/outliers", timeout=5) as resp:
        assert json.loads(resp.read()) == {"enabled": False, "services": {}}

    # Turned on by SIGHUP: from the next request, three failures and it is out (for a
    # minute, so that it is still out after the next reloads, however slow they are).
    long = {**OUTLIERS["outlier_detection"]["breaker"], "open_base": "60s", "open_max": "60s"}
    rewrite(edge, outlier_detection={**OUTLIERS["outlier_detection"], "breaker": long})
    view = hang_up(edge, "applied")
    applied = view["last_reload"]["applied"]
    assert "outlier_detection.enabled" in applied, applied
    assert all(key.startswith("outlier_detection.") for key in applied), applied
    assert view["restart_pending"] == []
    seen = answers(url, 20)
    assert [s for s, _ in seen].count(500) == 3, seen
    assert outliers_view(edge.admin)["users"]["ejections"] == 1

    # A reload that changes something else keeps the ejection; one that turns the
    # section off lets the broken instance back at once.
    rewrite(edge, logging={"level": "debug"})
    hang_up(edge, "applied", 2)
    assert [s for s, _ in answers(url, 4)] == [200] * 4
    rewrite(edge, outlier_detection=None)
    hang_up(edge, "applied", 3)
    assert [s for s, _ in answers(url, 4)].count(500) == 2
    assert metrics(edge.admin)["meshgate_outlier_ejected_instances"] == [
        ({"service": "users"}, 0.0)
    ]


def workers_view(edge: Edge, method: str = "GET", body: Any = None) -> list[dict[str, Any]]:
    """Each worker's answer (``?workers=all``) to ``/outliers`` or, with a body, to a
    POST of ``/outliers/ejections``."""
    path = "/outliers" if body is None else "/outliers/ejections"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{edge.admin}{path}?workers=all", data=data, method=method
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        answered: list[dict[str, Any]] = json.loads(resp.read())["workers"]
    assert [w["worker"] for w in answered] == [0, 1]
    return answered


def users_of(worker: dict[str, Any]) -> dict[str, Any]:
    """A worker's ``/outliers`` entry for users."""
    users: dict[str, Any] = worker["answer"]["services"].get("users", {})
    return users


def ejected_in(worker: dict[str, Any]) -> set[str]:
    """The instances of users a worker leaves out now: its breaker's, or told."""
    users = users_of(worker)
    own = {i for i, state in users.get("instances", {}).items() if state["ejected"]}
    return own | set(users.get("ejected_when_told", {}))


def test_with_two_workers_one_workers_ejection_reaches_the_other(mesh: Mesh) -> None:
    # Ejected for 10 s: time enough for the checks below on a slow machine.
    breaker = {**BREAKER, "open_base": "10s", "open_max": "10s"}
    detection = {"outlier_detection": {"enabled": True, "breaker": breaker}, "workers": 2}
    bad, edge, url = two_instances(mesh, detection)
    wait_until(lambda: len(descendants(edge.process.pid)) == 2, 10, "two workers")

    def ejections() -> float:
        return sum(v for _, v in metrics(edge.admin).get("meshgate_outlier_ejections_total", []))

    # Requests on new connections, spread over both workers, until one worker's breaker
    # opens (three failures in a row there); then both leave the instance out.
    wait_until(lambda: http(url)[0] > 0 and ejections() >= 1, 30, "a first ejection")
    wait_until(
        lambda: all(ejected_in(w) == {"users-bad"} for w in workers_view(edge)),
        5,
        "every worker to leave users-bad out",
    )
    # A worker whose breaker opened told the other: one told per ejection.
    told = [w for w in workers_view(edge) if "ejected_when_told" in users_of(w)]
    assert len(told) == ejections()
    served = bad.stats()["total"]
    assert {s for s, _ in answers(url, 20)} == {200}
    assert bad.stats()["total"] == served  # neither worker sent it another request


def test_an_operator_ejects_an_instance_from_every_worker(mesh: Mesh) -> None:
    bad, edge, url = two_instances(mesh, {**OUTLIERS, "workers": 2})
    bad.faults(error_rate=0.0)  # healthy: only the operator takes it out
    wait_until(lambda: len(descendants(edge.process.pid)) == 2, 10, "two workers")
    body = {"service": "users", "instance": "users-bad", "seconds": 60}
    answered = workers_view(edge, "POST", body)
    assert [w["answer"] for w in answered] == [body, body]
    assert all(ejected_in(w) == {"users-bad"} for w in workers_view(edge))
    served = bad.stats()["total"]
    assert {i for _, i in answers(url, 20)} == {"users-good"}
    assert bad.stats()["total"] == served
