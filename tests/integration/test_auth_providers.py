"""Several identity providers end to end: two real demo auth services, each with its own
issuer and key, an edge verifying tokens of both, and an app behind a sidecar that
requires the edge's identity signature.

Tokens are minted with the very key files the auth services sign with and publish in
their JWKS; the edge fetches both key sets over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from demo.auth_service import key_id_for, load_or_create_key_file, mint_token
from tests.integration.harness import App, Mesh
from tests.integration.test_auth import bearer, get, identity_seen, write_edge_identity_keys

CUSTOMERS = ("http://auth.demo", "meshgate")
STAFF = ("http://sso.staff", "staff-api")

ROUTES: list[dict[str, Any]] = [
    # Every provider (the default for routes).
    {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"},
    {
        "prefix": "/staff/users",
        "service": "users",
        "prefix_rewrite": "/users",
        "auth": {"providers": ["staff"]},
    },
]


def jwks_url(app: App) -> str:
    return f"{app.url}/.well-known/jwks.json"


def token(key_file: Path, provider: tuple[str, str], sub: str) -> str:
    """A token of ``provider`` (issuer, audience), signed as its auth service signs."""
    key = load_or_create_key_file(key_file)
    issuer, audience = provider
    return mint_token(key, key_id_for(key), sub, ["user"], issuer, audience, 300)


async def test_tokens_of_two_providers(mesh: Mesh, tmp_path: Path) -> None:
    customers_key, staff_key = tmp_path / "customers.pem", tmp_path / "staff.pem"
    customers = mesh.auth_service(customers_key, name="auth")
    staff = mesh.auth_service(staff_key, name="sso", issuer=STAFF[0], audience=STAFF[1])
    edge_private, edge_public = write_edge_identity_keys(tmp_path)
    users = mesh.app("users", "users-1")
    mesh.sidecar(
        users,
        "users-1",
        extra={"identity": {"edge_public_key_file": str(edge_public), "require": True}},
    )
    edge = mesh.edge(
        ROUTES,
        extra={
            "auth": {
                "issuer": CUSTOMERS[0],
                "audience": CUSTOMERS[1],
                "jwks": {"url": jwks_url(customers)},
                "providers": {
                    "staff": {
                        "issuer": STAFF[0],
                        "audience": STAFF[1],
                        "jwks": {"url": jwks_url(staff)},
                    }
                },
                "identity": {"token": {"signing_key_file": str(edge_private)}},
            }
        },
    )
    alice = token(customers_key, CUSTOMERS, "alice")
    carol = token(staff_key, STAFF, "carol")
    async with aiohttp.ClientSession() as session:
        # Both accepted where every provider is; the app learns which one vouched,
        # through the sidecar's identity check (a spoofed copy never gets there).
        for tok, sub, provider in ((alice, "alice", "default"), (carol, "carol", "staff")):
            spoofed = {**bearer(tok), "X-Auth-Provider": "spoofed", "X_Auth_Provider": "x"}
            status, _, body = await wait_ok(session, f"{edge.url}/api/users/echo", spoofed)
            assert status == 200, body
            seen = dict(identity_seen(body))
            assert seen["x-user-id"] == sub
            providers_seen = [
                v for k, v in body["headers"] if k.lower().replace("_", "-") == "x-auth-provider"
            ]
            assert providers_seen == [provider]

        # The staff route takes staff tokens only.
        status, _, body = await get(session, f"{edge.url}/staff/users/echo", bearer(carol))
        assert status == 200 and dict(identity_seen(body))["x-user-id"] == "carol"
        status, headers, body = await get(session, f"{edge.url}/staff/users/echo", bearer(alice))
        assert status == 401
        assert headers["WWW-Authenticate"] == (
            'Bearer realm="meshgate", error="invalid_token", '
            'error_description="token issuer not accepted on this route"'
        )
        assert body["error"] == "invalid_token"
        # The same for a token seen first here (alice's came from the verified cache).
        bob = token(customers_key, CUSTOMERS, "bob")
        status, _, body = await get(session, f"{edge.url}/staff/users/echo", bearer(bob))
        assert status == 401 and body["detail"] == "token issuer not accepted on this route"

        # An issuer no provider has: refused like any invalid token, the token not echoed.
        rogue = ec.generate_private_key(ec.SECP256R1())
        now = int(time.time())
        claims = {"iss": "http://rogue", "aud": "meshgate", "sub": "eve", "iat": now}
        claims["exp"] = now + 300
        rogue_token = jwt.encode(claims, rogue, algorithm="ES256", headers={"kid": "r1"})
        status, headers, body = await get(
            session, f"{edge.url}/api/users/echo", bearer(rogue_token)
        )
        assert status == 401
        assert headers["WWW-Authenticate"] == (
            'Bearer realm="meshgate", error="invalid_token", error_description="unknown issuer"'
        )
        assert (body["status"], body["error"], body["detail"]) == (
            401,
            "invalid_token",
            "unknown issuer",
        )
        assert rogue_token not in str(body)

        # The staff key cannot sign for the customers' issuer.
        key = load_or_create_key_file(staff_key)
        forged = mint_token(key, key_id_for(key), "eve", ["admin"], *CUSTOMERS, 300)
        status, _, body = await get(session, f"{edge.url}/api/users/echo", bearer(forged))
        assert status == 401 and body["error"] == "invalid_token"

        status, _, view = await get(session, f"http://127.0.0.1:{edge.admin}/auth")
        assert status == 200
        assert view["providers"]["staff"]["issuer"] == STAFF[0]
        assert view["providers"]["default"]["jwks"]["keys"] >= 1
        assert view["providers"]["staff"]["jwks"]["keys"] >= 1


async def wait_ok(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], within: float = 15
) -> tuple[int, dict[str, str], Any]:
    """GET until it is not a 503 (the edge fetches the key sets, and finds the
    app in the catalog, in the background after it is ready)."""
    deadline = time.monotonic() + within
    while True:
        status, got, body = await get(session, url, headers)
        if status not in (503, 502) or time.monotonic() > deadline:
            return status, got, body
        await asyncio.sleep(0.1)
