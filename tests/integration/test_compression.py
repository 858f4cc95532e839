"""Gzip at the edge: a real edge, sidecar and demo app; the config section, a route that
turns it off, the counter, and a reload that changes the settings."""

from __future__ import annotations

import gzip
import json
import urllib.request

from tests.integration.harness import Mesh, hang_up, metrics, rewrite

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
RAW = {"prefix": "/raw/users", "service": "users", "prefix_rewrite": "/users", "compression": False}
PAD = "p" * 3000  # echoed back: the answer is a few KB of JSON


def get(url: str) -> tuple[dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip", "X-Pad": PAD})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def compressed_count(admin: int) -> float:
    return metrics(admin)["meshgate_compressed_responses_total"][0][1]


def test_answers_are_gzipped_per_route_and_settings_reload(mesh: Mesh) -> None:
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge([USERS, RAW])  # started without compression

    headers, raw = get(f"{edge.url}/api/users/echo")
    assert "content-encoding" not in headers
    assert json.loads(raw)["service"] == "users"

    rewrite(edge, compression={})  # turned on by a reload
    view = hang_up(edge, "applied")
    assert view["last_reload"]["applied"] == ["compression"]
    headers, raw = get(f"{edge.url}/api/users/echo")
    assert headers["content-encoding"] == "gzip"
    assert "accept-encoding" in headers["vary"].lower()
    echo = json.loads(gzip.decompress(raw))
    assert echo["service"] == "users"
    assert len(raw) < len(gzip.decompress(raw))
    # The service was asked as the client asked: it may compress itself (then the edge
    # leaves the answer alone).
    sent = {k.lower(): v for k, v in echo["headers"]}
    assert sent["accept-encoding"] == "gzip"

    headers, raw = get(f"{edge.url}/raw/users/echo")  # the route says compression: false
    assert "content-encoding" not in headers
    assert json.loads(raw)["service"] == "users"
    assert compressed_count(edge.admin) == 1

    rewrite(edge, compression={"min_size": "1MB"})
    view = hang_up(edge, "applied", 2)
    assert view["last_reload"]["applied"] == ["compression.min_size"]
    headers, raw = get(f"{edge.url}/api/users/echo")
    assert "content-encoding" not in headers  # a few KB: under the new minimum
    assert json.loads(raw)["service"] == "users"
    assert compressed_count(edge.admin) == 1
