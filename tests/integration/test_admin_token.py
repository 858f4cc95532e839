"""The admin listener's bearer token, on real edge and sidecar processes with Consul.

What is checked: with a token the probes, ``/metrics`` and the public keys stay
open while views and actions need it (401 otherwise, and no purge done); an edge
of two workers answers ``?workers=all`` and purges every worker with the token
(the workers ask one another without it); a sidecar takes the token from an
environment variable and keeps Consul's ``/health/app`` open; a reload replaces
the token, and a reload whose token file is gone is refused, the last token
still guarding.
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from demo.processes import wait_until
from tests.integration.harness import Edge, Mesh, descendants, http, metrics, reloads

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
TOKEN = "3f9a1c0e5b7d2a4f6e8c0b1d3a5f7e9c"
NEW_TOKEN = "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
CHALLENGE = 'Bearer realm="meshgate-admin"'


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(port: int, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
    """POST ``body`` as JSON to the admin listener on ``port``: (status, JSON answer)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(bearer(token) if token else {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def refusals(port: int) -> dict[str, float]:
    return {
        labels["reason"]: value
        for labels, value in metrics(port).get("meshgate_admin_refusals_total", [])
    }


def token_file(tmp_path: Path, token: str = TOKEN) -> Path:
    path = tmp_path / "admin-token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def cached_edge(mesh: Mesh, tmp_path: Path, **extra: Any) -> Edge:
    users = mesh.app("users", "users-1")
    mesh.sidecar(users, "users-1")
    admin_token = {"admin": {"token_file": str(token_file(tmp_path))}}
    return mesh.edge([{**USERS, "cache": {}}], {**admin_token, **extra})


def test_an_edge_with_a_token(mesh: Mesh, tmp_path: Path) -> None:
    edge = cached_edge(mesh, tmp_path)  # ready: /readyz answered without a token
    admin = f"http://127.0.0.1:{edge.admin}"
    for path in ("/healthz", "/readyz", "/metrics", "/identity/jwks.json"):
        assert http(admin + path)[0] == 200, path

    status, headers, body = http(admin + "/routes")
    assert (status, headers["www-authenticate"]) == (401, CHALLENGE)
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 401
    status, headers, _ = http(admin + "/routes", bearer(NEW_TOKEN))
    assert (status, headers["www-authenticate"]) == (401, f'{CHALLENGE}, error="invalid_token"')
    status, _, body = http(admin + "/routes", bearer(TOKEN))
    assert status == 200 and "routes" in json.loads(body)
    assert http(admin + "/config")[0] == 401
    assert http(admin + "/config", bearer(TOKEN))[0] == 200

    # An action: refused without the token, and nothing purged.
    assert http(f"{edge.url}/api/users/cached/a?cc=max-age=60")[0] == 200
    assert post(edge.admin, "/cache/purge", {"all": True})[0] == 401
    assert post(edge.admin, "/cache/purge", {"all": True}, "wrong")[0] == 401
    assert json.loads(http(admin + "/cache", bearer(TOKEN))[2])["entries"] == 1
    status, answer = post(edge.admin, "/cache/purge", {"all": True}, TOKEN)
    assert (status, answer["purged"]) == (200, 1)
    assert refusals(edge.admin) == {"missing": 3, "not_bearer": 0, "wrong_token": 2}


def test_two_workers_answer_for_all_with_the_token(mesh: Mesh, tmp_path: Path) -> None:
    edge = cached_edge(mesh, tmp_path, workers=2)  # the harness's ports are fixed ones
    wait_until(lambda: len(descendants(edge.process.pid)) == 2, 10, "two workers")
    admin = f"http://127.0.0.1:{edge.admin}"
    assert http(admin + "/config?workers=all")[0] == 401
    # Every connection a new one: SO_REUSEPORT spreads them over both workers, and each
    # asks the other over its Unix socket, without the client's token.
    for _ in range(6):
        status, _, body = http(admin + "/config?workers=all", bearer(TOKEN))
        answers = json.loads(body)["workers"]
        assert status == 200, body
        assert [(a["worker"], a["status"]) for a in answers] == [(0, 200), (1, 200)]
    status, answer = post(edge.admin, "/cache/purge", {"all": True}, TOKEN)
    assert status == 200, answer
    assert [w["status"] for w in answer["workers"]] == [200, 200]
    assert post(edge.admin, "/cache/purge", {"all": True})[0] == 401


def test_a_sidecar_with_a_token_from_its_environment(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHGATE_ADMIN_TOKEN", TOKEN)  # the processes started inherit it
    users = mesh.app("users", "users-1")
    sidecar = mesh.sidecar(
        users, "users-1", extra={"admin": {"token_env": "MESHGATE_ADMIN_TOKEN"}}
    )  # registered and passing in Consul, so its check went through
    admin = f"http://127.0.0.1:{sidecar.admin}"
    for path in ("/healthz", "/readyz", "/metrics", "/health/app"):
        assert http(admin + path)[0] == 200, path
    for path in ("/routes", "/breakers", "/config"):
        status, headers, _ = http(admin + path)
        assert (status, headers["www-authenticate"]) == (401, CHALLENGE), path
        assert http(admin + path, bearer(TOKEN))[0] == 200, path
    assert refusals(sidecar.admin)["missing"] == 3


def test_a_reload_replaces_the_token(mesh: Mesh, tmp_path: Path) -> None:
    edge = cached_edge(mesh, tmp_path)
    routes = f"http://127.0.0.1:{edge.admin}/routes"
    secret = tmp_path / "admin-token"

    secret.write_text(NEW_TOKEN + "\n")  # the same path: read again on SIGHUP
    assert http(routes, bearer(TOKEN))[0] == 200  # not before the reload
    edge.process.send_signal(signal.SIGHUP)
    wait_until(lambda: reloads(edge).get("applied") == 1, 10, "reload applied")
    assert http(routes, bearer(TOKEN))[0] == 401
    assert http(routes, bearer(NEW_TOKEN))[0] == 200

    # A token file gone: the reload is refused, and the last token still guards.
    secret.unlink()
    edge.process.send_signal(signal.SIGHUP)
    wait_until(lambda: reloads(edge).get("refused") == 1, 10, "reload refused")
    assert http(routes)[0] == 401
    status, _, body = http(f"http://127.0.0.1:{edge.admin}/config", bearer(NEW_TOKEN))
    assert status == 200
    error = json.loads(body)["last_reload"]["error"]
    assert f"admin.token_file: cannot read {secret}: No such file or directory" in error
