"""The edge's calls to the auth service over mesh TLS: real Consul (Connect on, as in
``-dev``), the demo auth service and ``users`` behind sidecars with mesh TLS, an edge
with mesh TLS finding the auth service in the catalog.

What is shown: the edge fetches the JWKS and asks for introspection through its own
transport with its Connect certificate (the auth sidecar's inbound takes nothing
else), so tokens verify and requests reach ``users``; and an intention denying the
edge the auth service leaves a fresh edge without keys, answering requests that need
a token as it does whenever keys cannot be fetched (503 ``auth-unavailable``), until
the intention is deleted.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

from demo.auth_service import key_id_for, load_or_create_key_file, mint_token
from demo.processes import wait_until
from tests.integration.harness import App, Edge, Mesh, consul_api, http, metrics
from tests.integration.test_auth import AUDIENCE, ISSUER, bearer, get_json, identity_seen

MESH_TLS = {"mesh_tls": {"enabled": True}}
ROUTES: list[dict[str, Any]] = [
    {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"},
    {
        "prefix": "/introspected/users",
        "service": "users",
        "prefix_rewrite": "/users",
        "auth": {"mode": "introspect"},
    },
    {"prefix": "/auth", "service": "auth", "auth": "none"},
]
AUTH = {
    "issuer": ISSUER,
    "audience": AUDIENCE,
    "jwks": {"service": "auth"},
    "introspection": {"service": "auth", "client_id": "edge", "client_secret": "edge-secret"},
}


def token(key_file: Path, sub: str = "alice") -> str:
    key = load_or_create_key_file(key_file)
    return mint_token(key, key_id_for(key), sub, ["user"], ISSUER, AUDIENCE, 300)


def start_services(mesh: Mesh, tmp_path: Path) -> tuple[App, Path]:
    """``users`` behind a mesh-TLS sidecar, and the auth service (its sidecar not yet
    started): (the auth service, its signing key file)."""
    key_file = tmp_path / "auth-signing-key.pem"
    load_or_create_key_file(key_file)
    mesh.sidecar(mesh.app("users", "users-1"), "users-1", extra=MESH_TLS)
    return mesh.auth_service(key_file), key_file


def edge_with_auth(mesh: Mesh) -> Edge:
    return mesh.edge(ROUTES, extra={**MESH_TLS, "auth": AUTH})


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    status, answer_headers, body = http(url, headers)
    return status, answer_headers, json.loads(body)


def test_the_edge_fetches_keys_and_introspects_over_mesh_tls(mesh: Mesh, tmp_path: Path) -> None:
    auth, key_file = start_services(mesh, tmp_path)
    auth_sidecar = mesh.sidecar(auth, "auth-1", extra=MESH_TLS)
    edge = edge_with_auth(mesh)

    # The auth service's sidecar takes only mutual TLS: plain HTTP is refused (and the
    # auth service never sees it: its fetches are the edge's alone, checked below).
    status, _, body = http(f"http://127.0.0.1:{auth_sidecar.inbound}/.well-known/jwks.json")
    assert status == 403 and json.loads(body)["type"].endswith("/mesh-tls-required")

    # A valid token: keys fetched from the auth service, the request served by users
    # (edge → users' sidecar over mesh TLS too) with the caller's identity.
    assert get(f"{edge.url}/api/users/echo")[0] == 401
    status, _, body = get(f"{edge.url}/api/users/echo", bearer(token(key_file)))
    assert status == 200, body
    assert ("x-user-id", "alice") in identity_seen(body)
    jwks = get_json(f"http://127.0.0.1:{edge.admin}/auth")["jwks"]
    assert jwks["source"] == (
        "service auth at /.well-known/jwks.json (mesh TLS to Connect-native instances)"
    )
    assert (jwks["keys"], jwks["failures"]) == (1, 0), jwks
    # Every fetch the auth service served was the edge's (the plain request above
    # would have made one more).
    assert auth.stats()["jwks_fetches"] == jwks["fetches"] >= 1

    # Introspection goes the same way, the token in it sent only to a verified auth.
    before = auth.stats()["introspections"]
    status, _, body = get(f"{edge.url}/introspected/users/echo", bearer(token(key_file, "bob")))
    assert status == 200, body
    assert ("x-auth-method", "introspect") in identity_seen(body)
    assert auth.stats()["introspections"] == before + 1


def test_an_intention_denying_the_edge_the_auth_service_leaves_it_without_keys(
    mesh: Mesh, tmp_path: Path
) -> None:
    auth, key_file = start_services(mesh, tmp_path)
    # Denied before the auth sidecar starts: it opens its inbound listener only once it
    # has the intentions, so no fetch can slip through before the deny is known.
    denied = consul_api(
        mesh.consul,
        "POST",
        "/v1/connect/intentions",
        {"SourceName": "meshgate-edge", "DestinationName": "auth", "Action": "deny"},
    )
    auth_sidecar = mesh.sidecar(auth, "auth-1", extra=MESH_TLS)
    edge = edge_with_auth(mesh)

    def view() -> dict[str, Any]:
        jwks: dict[str, Any] = get_json(f"http://127.0.0.1:{edge.admin}/auth")["jwks"]
        return jwks

    wait_until(lambda: view()["failures"] >= 1, 10, "a refused JWKS fetch")
    jwks = view()
    assert jwks["keys"] == 0 and jwks["age_s"] is None
    assert jwks["last_error"] == "JwksFetchError: JWKS endpoint answered HTTP 403"
    # A request needing a token: 503, as whenever the keys cannot be fetched.
    status, headers, problem = get(f"{edge.url}/api/users/echo", bearer(token(key_file)))
    assert status == 503, problem
    assert problem["type"].endswith("/auth-unavailable")
    assert headers["retry-after"] == "5"
    # The edge presented its Connect certificate, the auth sidecar refused it by the
    # intention, and the auth service never saw a fetch.
    refusals = {
        labels["source"]: value
        for labels, value in metrics(auth_sidecar.admin)["meshgate_intention_refusals_total"]
    }
    assert refusals["meshgate-edge"] >= 1
    assert auth.stats()["jwks_fetches"] == 0

    # Deleted, the intention no longer stands in the way: the edge's retries load the keys.
    consul_api(mesh.consul, "DELETE", f"/v1/connect/intentions/{urllib.parse.quote(denied['ID'])}")
    wait_until(
        lambda: http(f"{edge.url}/api/users/echo", bearer(token(key_file)))[0] == 200,
        20,
        "a token accepted once the intention is gone",
    )
    assert auth.stats()["jwks_fetches"] >= 1
