"""CORS at a real edge in front of an authenticating mesh: preflights answered at the edge
without credentials, and the CORS headers on every answer an allowed page may read."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.integration.harness import Mesh, metrics
from tests.integration.test_auth import bearer, start_auth_mesh

APP = "https://app.example.com"
CORS = {
    "cors": {
        "allow_origins": [APP, "https://*.partner.example"],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["Authorization", "Content-Type"],
        "expose_headers": ["X-Request-Id", "RateLimit-Remaining"],
        "max_age": "5m",
    }
}


def _preflights(admin: int, outcome: str) -> float:
    for labels, value in metrics(admin).get("meshgate_cors_preflights_total", []):
        if labels.get("outcome") == outcome:
            return value
    return 0.0


async def test_preflights_are_answered_at_the_edge(mesh: Mesh, tmp_path: Path) -> None:
    am = start_auth_mesh(mesh, tmp_path, edge_extra=CORS)
    url = f"{am.edge.url}/api/users/echo"  # a route that needs a token
    asked_before = am.users.stats()["requests"]
    async with aiohttp.ClientSession() as session:
        preflight = {
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        async with session.options(url, headers=preflight) as resp:
            assert resp.status == 204  # no token: a preflight never carries one
            assert resp.headers["Access-Control-Allow-Origin"] == APP
            assert resp.headers["Access-Control-Allow-Methods"] == "GET, POST"
            assert resp.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
            assert resp.headers["Access-Control-Max-Age"] == "300"
            assert "Origin" in resp.headers["Vary"]
            assert "X-Request-Id" in resp.headers

        for origin, method, headers, detail in [
            ("https://evil.example", "POST", "", "origin 'https://evil.example' is not allowed"),
            (APP, "DELETE", "", "method 'DELETE' is not allowed"),
            (APP, "POST", "X-Secret", "request header 'X-Secret' is not allowed"),
        ]:
            refused = {**preflight, "Origin": origin, "Access-Control-Request-Method": method}
            refused["Access-Control-Request-Headers"] = headers
            async with session.options(url, headers=refused) as resp:
                assert resp.status == 403
                assert resp.headers["Content-Type"] == "application/problem+json"
                problem = await resp.json()
                assert problem["type"].endswith("/cors-refused") and problem["detail"] == detail
                assert "Access-Control-Allow-Origin" not in resp.headers
        # A subdomain of the wildcard origin is allowed.
        sub = {**preflight, "Origin": "https://shop.partner.example"}
        async with session.options(url, headers=sub) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.partner.example"
    # None of them reached the service.
    assert am.users.stats()["requests"] == asked_before
    assert _preflights(am.edge.admin, "allowed") == 2
    assert _preflights(am.edge.admin, "refused") == 3


async def test_an_allowed_page_can_read_every_answer(mesh: Mesh, tmp_path: Path) -> None:
    am = start_auth_mesh(mesh, tmp_path, edge_extra=CORS)
    url = f"{am.edge.url}/api/users/echo"
    async with aiohttp.ClientSession() as session:
        # The edge's own refusal carries the headers too, so the page learns it was a 401.
        async with session.get(url, headers={"Origin": APP}) as resp:
            assert resp.status == 401
            assert resp.headers["Access-Control-Allow-Origin"] == APP
            assert resp.headers["Access-Control-Expose-Headers"] == (
                "X-Request-Id, RateLimit-Remaining"
            )
            assert resp.headers["Vary"] == "Origin"
        async with session.get(url, headers={"Origin": APP, **bearer(am.token())}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == APP
            assert "Origin" in resp.headers["Vary"]
            assert (await resp.json())["service"] == "users"
        # Another origin is served (CORS is the browser's check, not access control)
        # without the headers that would let its page read the answer.
        other = {"Origin": "https://evil.example", **bearer(am.token())}
        async with session.get(url, headers=other) as resp:
            assert resp.status == 200
            assert "Access-Control-Allow-Origin" not in resp.headers
            assert resp.headers["Vary"] == "Origin"
        # No Origin: not a cross-origin request, nothing added.
        async with session.get(url, headers=bearer(am.token())) as resp:
            assert resp.status == 200
            assert "Access-Control-Allow-Origin" not in resp.headers
            assert "Vary" not in resp.headers
