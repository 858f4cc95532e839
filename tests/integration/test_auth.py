"""Edge authentication end to end: real Consul, Redis, auth service, edge, sidecars and apps.

Every request goes through the processes a user runs: the demo auth service
behind its own sidecar (found by the edge through Consul), the ``users`` demo
app behind a sidecar that requires the edge's identity signature, and the edge.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import ssl
import subprocess
import time
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import redis
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from demo.auth_service import key_id_for, load_or_create_key_file, mint_token, public_jwk
from demo.processes import RedisServer, free_port, meshgate_argv
from mesh.config.merge import deep_merge
from mesh.identity.headers import header_key
from mesh.identity.keys import generate_signing_key, public_key_pem, signing_key_pem
from mesh.identity.token import IdentitySigner
from tests.integration.harness import App, Edge, Mesh, Sidecar, raw_request

ISSUER = "http://auth.demo"
AUDIENCE = "meshgate"
MANAGED = {"x-user-id", "x-user-roles", "x-user-email", "x-consumer-id", "x-auth-method"}
TOKEN_KEY = "x-mesh-identity"

ROUTES: list[dict[str, Any]] = [
    # No auth section: the default, which requires a caller once a method is configured.
    {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"},
    {"prefix": "/public/users", "service": "users", "prefix_rewrite": "/users", "auth": "none"},
    {"prefix": "/healthz", "service": "users", "prefix_rewrite": "/users/healthz", "auth": "none"},
    {
        "prefix": "/admin/users",
        "service": "users",
        "prefix_rewrite": "/users",
        "auth": {"roles": ["admin"]},
    },
    {"prefix": "/auth", "service": "auth", "auth": "none"},
]


# --- the mesh of these tests ------------------------------------------------------


@dataclass
class AuthMesh:
    mesh: Mesh
    auth: App
    auth_sidecar: Sidecar
    users: App
    users_sidecar: Sidecar
    edge: Edge
    auth_key: Path

    @property
    def kid(self) -> str:
        return key_id_for(load_or_create_key_file(self.auth_key))

    def token(self, sub: str = "alice", roles: Sequence[str] = ("user",), **claims: Any) -> str:
        """A valid token signed with the auth service's key (overrides in ``claims``)."""
        key = load_or_create_key_file(self.auth_key)
        return mint_token(
            key,
            key_id_for(key),
            sub,
            roles,
            ISSUER,
            AUDIENCE,
            300,
            f"{sub}@example.com",
            extra_claims=claims,
        )

    def auth_view(self) -> dict[str, Any]:
        view: dict[str, Any] = get_json(f"http://127.0.0.1:{self.edge.admin}/auth")
        return view


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def write_edge_identity_keys(directory: Path) -> tuple[Path, Path]:
    """A fresh edge identity key pair as PEM files: (private, public)."""
    key = generate_signing_key("ES256")
    private, public = directory / "edge-identity.pem", directory / "edge-identity.pub.pem"
    private.write_bytes(signing_key_pem(key))
    public.write_bytes(public_key_pem(key.public_key()))
    return private, public


def start_auth_mesh(
    mesh: Mesh,
    tmp_path: Path,
    *,
    edge_auth: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
    edge_extra: dict[str, Any] | None = None,
) -> AuthMesh:
    """The auth service and ``users`` behind sidecars that require the edge's identity,
    and an edge authenticating with the auth service's JWKS (``edge_auth`` merged into
    its ``auth`` section, ``edge_extra`` into the rest of its config)."""
    auth_key = tmp_path / "auth-signing-key.pem"
    load_or_create_key_file(auth_key)
    edge_private, edge_public = write_edge_identity_keys(tmp_path)
    identity = {"identity": {"edge_public_key_file": str(edge_public), "require": True}}
    auth = mesh.auth_service(auth_key)
    auth_sidecar = mesh.sidecar(auth, "auth-1", extra=identity)
    users = mesh.app("users", "users-1")
    users_sidecar = mesh.sidecar(users, "users-1", extra=identity)
    auth_config = deep_merge(
        {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks": {"service": "auth"},
            "identity": {"token": {"signing_key_file": str(edge_private)}},
        },
        edge_auth,
    )
    edge = mesh.edge(routes or ROUTES, extra=deep_merge({"auth": auth_config}, edge_extra))
    return AuthMesh(mesh, auth, auth_sidecar, users, users_sidecar, edge, auth_key)


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(header)}.{b64(claims)}.{b64(signature) if signature else ''}"


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64(header)}.{b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def valid_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "mallory",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "roles": ["admin"],
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign_es256(
    key: ec.EllipticCurvePrivateKey, kid: str, claims: dict[str, Any], **hdr: Any
) -> str:
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, **hdr})


async def get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    async with session.get(url, headers=headers or {}) as resp:
        raw = await resp.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        return resp.status, dict(resp.headers), body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def seen_headers(echo: dict[str, Any]) -> list[tuple[str, str]]:
    """The headers the app received, as (name, value) pairs."""
    return [(k, v) for k, v in echo["headers"]]


def identity_seen(echo: dict[str, Any]) -> list[tuple[str, str]]:
    """The managed identity headers the app received, in any spelling, lower-cased."""
    return sorted((header_key(k), v) for k, v in seen_headers(echo) if header_key(k) in MANAGED)


# --- hostile tokens -----------------------------------------------------------------


@dataclass
class AttackerJwks:
    """An attacker's JWKS server, counting requests (a jku must never make the edge call it)."""

    server: TestServer
    hits: list[str]

    @property
    def url(self) -> str:
        return str(self.server.make_url("/jwks.json"))


async def start_attacker_jwks(jwk: dict[str, Any]) -> AttackerJwks:
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/jwks.json", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return AttackerJwks(server, hits)


async def test_hostile_tokens_are_refused_with_specific_errors(mesh: Mesh, tmp_path: Path) -> None:
    am = start_auth_mesh(mesh, tmp_path)
    key = load_or_create_key_file(am.auth_key)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    kid = am.kid
    jwk = public_jwk(key, kid)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    attacker = ec.generate_private_key(ec.SECP256R1())
    attacker_jwks = await start_attacker_jwks(public_jwk(attacker, "evil"))
    claims = valid_claims()
    header = {"kid": kid, "typ": "JWT"}
    good = am.token()

    table: list[tuple[str, str, str]] = [
        ("alg none", unsigned({"alg": "none", **header}, claims), "alg not allowed"),
        ("alg None", unsigned({"alg": "None", **header}, claims), "alg not allowed"),
        ("alg NONE", unsigned({"alg": "NONE", **header}, claims), "alg not allowed"),
        (
            "alg none with a signature",
            unsigned({"alg": "none", **header}, claims, b"sig"),
            "alg not allowed",
        ),
        (
            "HS256 keyed with the public key (PEM)",
            hs256({"alg": "HS256", **header}, claims, public_pem),
            "alg not allowed",
        ),
        (
            "HS256 keyed with the public key (JWK)",
            hs256({"alg": "HS256", **header}, claims, json.dumps(jwk).encode()),
            "alg not allowed",
        ),
        (
            "RS256 claimed for the EC key",
            unsigned({"alg": "RS256", **header}, claims, b"x" * 256),
            "alg does not match key",
        ),
        ("kid ../../dev/null", sign_es256(key, "../../dev/null", claims), "invalid kid"),
        ("kid of 100 characters", sign_es256(key, "k" * 100, claims), "invalid kid"),
        ("kid of 10 KB", sign_es256(key, "k" * 10_240, claims), "token too large"),
        (
            "jku pointing at an attacker's JWKS",
            sign_es256(attacker, "evil", claims, jku=attacker_jwks.url),
            "key-locating header not allowed",
        ),
        (
            "jwk embedded in the header",
            sign_es256(attacker, "evil", claims, jwk=public_jwk(attacker, "evil")),
            "key-locating header not allowed",
        ),
        (
            "signed by a key the auth service never published",
            sign_es256(attacker, kid, claims),
            "signature invalid",
        ),
        ("expired", am.token(exp=int(time.time()) - 120), "token expired"),
        ("nbf in the future", am.token(nbf=int(time.time()) + 600), "token not yet valid"),
        ("wrong iss", am.token(iss="http://evil.example"), "issuer mismatch"),
        ("wrong aud", am.token(aud="someone-else"), "audience mismatch"),
        ("no exp", sign_es256(key, kid, valid_claims(exp=None)), "missing exp"),
        ("malformed base64", "eyJh+/bGc.eyJzdWIi.c2ln", "malformed token"),
        ("two segments", good.rsplit(".", 1)[0], "malformed token"),
        (
            "tampered signature",
            good[:-4] + ("AAAA" if good[-4:] != "AAAA" else "BBBB"),
            "signature invalid",
        ),
        ("over the size limit", "a" * 9000, "token too large"),
    ]
    failures: list[str] = []
    async with aiohttp.ClientSession() as session:
        status, _, _ = await get(session, f"{am.edge.url}/api/users/echo", bearer(good))
        assert status == 200, "the valid token must pass before hostile ones mean anything"
        for name, token, description in table:
            status, headers, body = await get(
                session, f"{am.edge.url}/api/users/echo", bearer(token)
            )
            challenge = headers.get("WWW-Authenticate", "")
            expected = f'error="invalid_token", error_description="{description}"'
            problems = []
            if status != 401:
                problems.append(f"status {status}")
            if expected not in challenge:
                problems.append(f"challenge {challenge!r}")
            if not isinstance(body, dict) or body.get("error_description") != description:
                problems.append(f"body {str(body)[:200]!r}")
            elif token[:40] in json.dumps(body) or token[:40] in challenge:
                problems.append("the token is echoed")
            if headers.get("Content-Type") != "application/problem+json":
                problems.append(f"content type {headers.get('Content-Type')}")
            if problems:
                failures.append(f"{name}: {', '.join(problems)}")
    assert not failures, "\n".join(failures)
    assert attacker_jwks.hits == [], "the edge fetched keys from a token's jku"
    await attacker_jwks.server.close()
    # Nothing hostile reached the app.
    assert am.users.stats()["requests"] == {"GET /users/echo": 1}


async def test_missing_token_role_check_and_public_routes(mesh: Mesh, tmp_path: Path) -> None:
    am = start_auth_mesh(mesh, tmp_path)
    async with aiohttp.ClientSession() as session:
        status, headers, body = await get(session, f"{am.edge.url}/api/users/echo")
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Bearer realm="meshgate"'
        assert body["error"] == "unauthorized"

        status, headers, body = await get(
            session, f"{am.edge.url}/admin/users/echo", bearer(am.token())
        )
        assert status == 403
        assert headers["WWW-Authenticate"] == (
            'Bearer realm="meshgate", error="insufficient_scope", '
            'error_description="missing required role", scope="admin"'
        )
        assert body["scope"] == "admin"
        status, _, body = await get(
            session, f"{am.edge.url}/admin/users/echo", bearer(am.token("bob", ["admin"]))
        )
        assert status == 200 and ("x-user-id", "bob") in identity_seen(body)

        # /auth/* is public: a token from the password grant, through the edge.
        async with session.post(
            f"{am.edge.url}/auth/token",
            data={"grant_type": "password", "username": "alice", "password": "wonderland"},
        ) as resp:
            assert resp.status == 200
            token = (await resp.json())["access_token"]
        status, _, body = await get(session, f"{am.edge.url}/api/users/echo", bearer(token))
        assert status == 200
        assert identity_seen(body) == [
            ("x-auth-method", "jwt"),
            ("x-user-email", "alice@example.com"),
            ("x-user-id", "alice"),
            ("x-user-roles", "user"),
        ]
        # The credential stays at the edge; the signed identity goes on.
        names = {header_key(k) for k, _ in seen_headers(body)}
        assert "authorization" not in names and TOKEN_KEY in names

        two = {"Authorization": f"Bearer {token}", "X-API-Key": "mgk_x"}
        status, _, body = await get(session, f"{am.edge.url}/api/users/echo", two)
        assert status == 400 and body["error"] == "invalid_request"


async def test_a_websocket_handshake_is_authenticated_like_any_request(
    mesh: Mesh, tmp_path: Path
) -> None:
    am = start_auth_mesh(mesh, tmp_path)
    url = f"ws://127.0.0.1:{am.edge.port}/api/users/ws"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with session.ws_connect(url):
                pass
        assert refused.value.status == 401
        spoofed = {**bearer(am.token()), "X-User-Id": "mallory"}
        async with session.ws_connect(url, headers=spoofed) as ws:
            hello = await ws.receive_json(timeout=5)
            await ws.send_str("through")
            assert await ws.receive_str(timeout=5) == "through"
    # The app's handshake carried the caller's identity, signed (the users sidecar
    # requires the edge's signature), and neither the spoofed copy nor the token.
    assert ("x-user-id", "alice") in identity_seen(hello)
    assert ("x-user-id", "mallory") not in identity_seen(hello)
    names = {header_key(k) for k, _ in seen_headers(hello)}
    assert "authorization" not in names and TOKEN_KEY in names


async def test_introspection_mode_asks_the_auth_service(mesh: Mesh, tmp_path: Path) -> None:
    am = start_auth_mesh(
        mesh,
        tmp_path,
        edge_auth={
            "introspection": {
                "service": "auth",
                "client_id": "edge",
                "client_secret": "edge-secret",
                "negative_ttl": "1s",
            }
        },
        routes=[
            *ROUTES,
            {
                "prefix": "/introspected/users",
                "service": "users",
                "prefix_rewrite": "/users",
                "auth": {"mode": "introspect"},
            },
        ],
    )
    url = f"{am.edge.url}/introspected/users/echo"
    async with aiohttp.ClientSession() as session:
        before = am.auth.stats()["introspections"]
        token = am.token()
        for _ in range(3):
            status, _, body = await get(session, url, bearer(token))
            assert status == 200, body
        assert ("x-auth-method", "introspect") in identity_seen(body)
        status, _, body = await get(session, url, bearer(am.token(aud="someone-else")))
        assert (status, body["error_description"]) == (401, "token inactive")
    # The active answer is cached (one call for three requests), the inactive one asked once.
    assert am.auth.stats()["introspections"] - before == 2


# --- the key set: unknown kids, rotation, outage ----------------------------------------


async def test_a_flood_of_unknown_kids_costs_at_most_one_jwks_fetch(
    mesh: Mesh, tmp_path: Path
) -> None:
    am = start_auth_mesh(mesh, tmp_path)  # default cooldown: 30 s
    key = load_or_create_key_file(am.auth_key)
    tokens = [am.token()] + [
        mint_token(key, secrets.token_urlsafe(12), "alice", ["user"], ISSUER, AUDIENCE, 300)
        for _ in range(1000)
    ]
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:
        status, _, _ = await get(session, f"{am.edge.url}/api/users/echo", bearer(tokens[0]))
        assert status == 200  # the key set is loaded
        before = am.auth.stats()["jwks_fetches"]
        started = time.monotonic()
        results = await asyncio.gather(
            *(get(session, f"{am.edge.url}/api/users/echo", bearer(t)) for t in tokens[1:])
        )
        elapsed = time.monotonic() - started
    assert elapsed < 30, "the flood must fit in one cooldown for the bound to be tested"
    assert {status for status, _, _ in results} == {401}
    assert {body["error_description"] for _, _, body in results} == {"unknown kid"}
    fetches = am.auth.stats()["jwks_fetches"] - before
    assert fetches <= 1, f"{fetches} JWKS fetches for 1,000 unknown kids within one cooldown"
    view = am.auth_view()["jwks"]
    assert view["unknown_kid_refused"] >= 999 - fetches


async def test_a_rotated_key_is_accepted_once_published(mesh: Mesh, tmp_path: Path) -> None:
    am = start_auth_mesh(mesh, tmp_path, edge_auth={"jwks": {"cooldown": "1s"}})
    async with aiohttp.ClientSession() as session:
        old = am.token()
        status, _, _ = await get(session, f"{am.edge.url}/api/users/echo", bearer(old))
        assert status == 200
        async with session.post(
            f"{am.edge.url}/auth/rotate", headers=bearer(am.token("bob", ["admin"]))
        ) as resp:
            assert resp.status == 200, await resp.text()
            rotated = await resp.json()
        assert rotated["retired_kid"] == am.kid
        async with session.post(
            f"{am.edge.url}/auth/token",
            data={"grant_type": "password", "username": "alice", "password": "wonderland"},
        ) as resp:
            new = (await resp.json())["access_token"]
        assert jwt.get_unverified_header(new)["kid"] == rotated["kid"]
        await asyncio.sleep(1.1)  # past the cooldown of the edge's last fetch
        before = am.auth.stats()["jwks_fetches"]
        status, _, body = await get(session, f"{am.edge.url}/api/users/echo", bearer(new))
        assert status == 200, body
        assert am.auth.stats()["jwks_fetches"] - before == 1
        # The retired key stays published for its grace period: old tokens still pass.
        status, _, _ = await get(session, f"{am.edge.url}/api/users/echo", bearer(old))
        assert status == 200


async def test_with_the_auth_service_stopped_cached_keys_keep_working(
    mesh: Mesh, tmp_path: Path
) -> None:
    am = start_auth_mesh(mesh, tmp_path, edge_auth={"jwks": {"cooldown": "1s"}})
    async with aiohttp.ClientSession() as session:
        status, _, _ = await get(session, f"{am.edge.url}/api/users/echo", bearer(am.token()))
        assert status == 200
        am.auth.process.kill()
        am.auth_sidecar.process.kill()
        await asyncio.sleep(1.1)
        # An unknown kid now makes the edge try the auth service, and fail.
        stray = mint_token(
            load_or_create_key_file(am.auth_key), "unknown-kid", "a", [], ISSUER, AUDIENCE, 60
        )
        status, _, body = await get(session, f"{am.edge.url}/api/users/echo", bearer(stray))
        assert (status, body["error_description"]) == (401, "unknown kid")
        jwks = am.auth_view()["jwks"]
        assert jwks["failures"] >= 1 and jwks["last_error"]
        assert jwks["keys"] == 1 and jwks["age_s"] is not None
        # A token never seen before (so not in the claims cache) verifies on the cached key.
        fresh = am.token("carol", ["user"])
        status, _, body = await get(session, f"{am.edge.url}/api/users/echo", bearer(fresh))
        assert status == 200, body
        assert ("x-user-id", "carol") in identity_seen(body)


# --- identity headers ----------------------------------------------------------------


SPOOFS: dict[str, list[tuple[str, str]]] = {
    "X-User-Id: admin": [("X-User-Id", "admin")],
    "x-user-id": [("x-user-id", "admin")],
    "X_User_Id": [("X_User_Id", "admin")],
    "two copies": [("X-User-Id", "admin"), ("X-User-Id", "root")],
    "Connection: X-User-Id": [("Connection", "X-User-Id"), ("X-User-Id", "admin")],
    "every managed header": [
        ("X-User-Roles", "admin"),
        ("X_User_Roles", "admin"),
        ("X-User-Email", "root@example.com"),
        ("X-Consumer-Id", "acme"),
        ("X-Auth-Method", "apikey"),
        ("X-Mesh-Identity", "forged.forged.forged"),
    ],
}


def head(path: str, port: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *[f"{k}: {v}" for k, v in headers]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def test_spoofed_identity_headers_never_reach_the_app(mesh: Mesh, tmp_path: Path) -> None:
    am = start_auth_mesh(mesh, tmp_path)
    port = am.edge.port
    token = am.token()
    failures: list[str] = []
    for spoof_name, spoof in SPOOFS.items():
        # Authenticated route: the app sees exactly what the edge set, once each.
        status, _, raw = await raw_request(
            port, head("/api/users/echo", port, [("Authorization", f"Bearer {token}"), *spoof])
        )
        if status != 200:
            failures.append(f"{spoof_name} / authenticated: status {status}")
        else:
            seen = identity_seen(json.loads(raw))
            expected = [
                ("x-auth-method", "jwt"),
                ("x-user-email", "alice@example.com"),
                ("x-user-id", "alice"),
                ("x-user-roles", "user"),
            ]
            if seen != expected:
                failures.append(f"{spoof_name} / authenticated: app saw {seen}")
        # Auth none and a health path: the app sees no identity at all.
        for path in ("/public/users/echo", "/healthz"):
            status, _, raw = await raw_request(port, head(path, port, spoof))
            if status != 200:
                failures.append(f"{spoof_name} / {path}: status {status}")
                continue
            echo = json.loads(raw)
            leaked = [
                (k, v) for k, v in seen_headers(echo) if header_key(k) in MANAGED | {TOKEN_KEY}
            ]
            if leaked:
                failures.append(f"{spoof_name} / {path}: app saw {leaked}")
        # No route: refused at the edge, nothing reaches any app.
        status, _, _ = await raw_request(port, head("/nowhere", port, spoof))
        if status != 404:
            failures.append(f"{spoof_name} / no route: status {status}")
    assert not failures, "\n".join(failures)
    stats = am.users.stats()["requests"]
    assert sum(stats.values()) == len(SPOOFS) * 3  # the no-route requests never arrived


async def test_forged_identity_sent_straight_to_a_sidecar_is_refused(
    mesh: Mesh, tmp_path: Path
) -> None:
    am = start_auth_mesh(mesh, tmp_path)
    sidecar = f"http://127.0.0.1:{am.users_sidecar.inbound}"
    forger = generate_signing_key("ES256")
    forged = IdentitySigner(forger).sign(
        subject="admin",
        roles=["admin"],
        request_id="forged-request-1",
        method="jwt",
        headers=[("X-User-Id", "admin"), ("X-User-Roles", "admin")],
    )
    async with aiohttp.ClientSession() as session:
        # A genuine request through the edge: its token is what the app received.
        status, _, echo = await get(
            session,
            f"{am.edge.url}/api/users/echo",
            {**bearer(am.token()), "X-Request-Id": "genuine-request-1"},
        )
        assert status == 200
        genuine = dict((header_key(k), v) for k, v in seen_headers(echo))[TOKEN_KEY]

        cases: list[tuple[str, dict[str, str], int]] = [
            ("X-User-Id without a token", {"X-User-Id": "admin"}, 401),
            ("x_user_roles without a token", {"X_User_Roles": "admin"}, 401),
            (
                "a token signed by another key",
                {
                    "X-Mesh-Identity": forged,
                    "X-User-Id": "admin",
                    "X-Request-Id": "forged-request-1",
                },
                401,
            ),
            ("garbage token", {"X-Mesh-Identity": "a.b.c"}, 401),
            (
                "a genuine token replayed for another request",
                {"X-Mesh-Identity": genuine, "X-Request-Id": "another-request-2"},
                401,
            ),
            ("no identity at all", {}, 200),
        ]
        for name, headers, expected in cases:
            status, resp_headers, body = await get(session, f"{sidecar}/users/echo", headers)
            assert status == expected, f"{name}: {status} {body}"
            if status == 401:
                assert body["type"].endswith("/identity-refused"), name
                assert "WWW-Authenticate" in resp_headers, name
            else:
                assert identity_seen(body) == [], name

        # The genuine token with its own request id, plus a forged header: the app
        # sees the signed identity, not the forgery.
        status, _, body = await get(
            session,
            f"{sidecar}/users/echo",
            {"X-Mesh-Identity": genuine, "X-Request-Id": "genuine-request-1", "X-User-Id": "admin"},
        )
        assert status == 200
        assert ("x-user-id", "alice") in identity_seen(body)
        assert ("x-user-id", "admin") not in identity_seen(body)
    view = get_json(f"http://127.0.0.1:{am.users_sidecar.admin}/identity")
    assert view["refused"] == 5 and view["verified"] >= 2


async def test_sidecars_can_take_the_edge_key_from_its_jwks(mesh: Mesh, tmp_path: Path) -> None:
    """As in docker-compose.yml: the edge generates its key, sidecars fetch its JWKS."""
    auth_key = tmp_path / "auth-signing-key.pem"
    auth = mesh.auth_service(auth_key)
    mesh.sidecar(auth, "auth-1")
    edge = mesh.edge(
        ROUTES,
        extra={"auth": {"issuer": ISSUER, "audience": AUDIENCE, "jwks": {"service": "auth"}}},
    )
    jwks_url = f"http://127.0.0.1:{edge.admin}/identity/jwks.json"
    users = mesh.sidecar(
        mesh.app("users", "users-1"),
        "users-1",
        extra={"identity": {"edge_jwks_url": jwks_url, "require": True}},
    )
    key = load_or_create_key_file(auth_key)
    token = mint_token(key, key_id_for(key), "alice", ["user"], ISSUER, AUDIENCE, 60)
    async with aiohttp.ClientSession() as session:
        status, _, body = await get(session, f"{edge.url}/api/users/echo", bearer(token))
        assert status == 200, body
        assert ("x-user-id", "alice") in identity_seen(body)
        sidecar = f"http://127.0.0.1:{users.inbound}/users/echo"
        status, _, _ = await get(session, sidecar, {"X-User-Id": "admin"})
        assert status == 401
    assert get_json(jwks_url)["keys"][0]["kid"] == edge_identity_kid(edge)


def edge_identity_kid(edge: Edge) -> str:
    kid: str = get_json(f"http://127.0.0.1:{edge.admin}/auth")["identity_token"]["kid"]
    return kid


# --- API keys --------------------------------------------------------------------------


def meshgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        meshgate_argv(*args), capture_output=True, text=True, timeout=60, check=False
    )


async def test_api_key_create_use_revoke(
    mesh: Mesh, tmp_path: Path, redis_server: RedisServer
) -> None:
    ttl = 1.0
    am = start_auth_mesh(
        mesh,
        tmp_path,
        edge_auth={"api_keys": {"redis_url": redis_server.url, "cache_ttl": f"{ttl}s"}},
        routes=[
            *ROUTES,
            {
                "prefix": "/partners/users",
                "service": "users",
                "prefix_rewrite": "/users",
                "auth": {"methods": ["apikey"], "roles": ["partner"]},
            },
        ],
    )
    created = meshgate(
        "apikey", "--redis", redis_server.url, "create",
        "--consumer", "acme", "--role", "partner", "--plan", "gold",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("mgk_") and "\n" not in key
    key_id = key.split("_")[1]
    assert key_id in created.stderr and key not in created.stderr

    # Redis holds no key in clear: not in any key name, hash field or value.
    client = redis.Redis.from_url(redis_server.url)
    secret = key.split("_", 2)[2]
    dump = []
    for name in client.scan_iter("*"):
        dump.append(name)
        if client.type(name) == b"hash":
            for field, value in client.hgetall(name).items():
                dump += [field, value]
        else:
            dump.append(client.dump(name) or b"")
    client.close()
    assert dump, "nothing stored?"
    assert not any(secret.encode() in item or key.encode() in item for item in dump)
    assert any(hashlib.sha256(key.encode()).hexdigest().encode() in item for item in dump)

    listed = meshgate("apikey", "--redis", redis_server.url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["id"], entry["consumer"], entry["roles"], entry["plan"]) == (
        key_id,
        "acme",
        ["partner"],
        "gold",
    )
    assert secret not in listed.stdout

    async with aiohttp.ClientSession() as session:
        for headers in ({"X-API-Key": key}, {"Authorization": f"ApiKey {key}"}):
            status, _, body = await get(session, f"{am.edge.url}/partners/users/echo", headers)
            assert status == 200, body
            assert identity_seen(body) == [
                ("x-auth-method", "apikey"),
                ("x-consumer-id", "acme"),
                ("x-user-id", "acme"),
                ("x-user-roles", "partner"),
            ]
            names = {header_key(k) for k, _ in seen_headers(body)}
            assert "x-api-key" not in names and "authorization" not in names
        # A bearer token is not accepted on an API-key route.
        status, headers, body = await get(
            session, f"{am.edge.url}/partners/users/echo", bearer(am.token())
        )
        assert (
            status == 401
            and body["error_description"] == "bearer tokens are not accepted on this route"
        )
        status, headers, body = await get(
            session,
            f"{am.edge.url}/partners/users/echo",
            {"X-API-Key": "mgk_" + "0" * 12 + "_" + "A" * 43},
        )
        assert status == 401 and body["error_description"] == "unknown api key"
        assert headers["WWW-Authenticate"].startswith("ApiKey ")

        revoked = meshgate("apikey", "--redis", redis_server.url, "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        revoked_at = time.monotonic()
        while True:
            status, _, body = await get(
                session, f"{am.edge.url}/partners/users/echo", {"X-API-Key": key}
            )
            if status == 401:
                break
            assert status == 200
            assert time.monotonic() - revoked_at < ttl + 0.5, "revoked key still works past TTL"
            await asyncio.sleep(0.05)
        assert body["error_description"] == "unknown api key"
        assert time.monotonic() - revoked_at <= ttl + 0.5
    listed = meshgate("apikey", "--redis", redis_server.url, "list")
    assert listed.stdout.strip() == "no API keys"


# --- TLS -----------------------------------------------------------------------------


async def test_tls_termination_and_http_redirect(mesh: Mesh, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "edge-cert.pem", tmp_path / "edge-key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    redirect_port = free_port()
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge(
        [{"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}],
        extra={
            "tls": {
                "cert_file": str(cert_file),
                "key_file": str(key_file),
                "redirect_http": {"host": "127.0.0.1", "port": redirect_port},
            }
        },
    )
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    https = f"https://127.0.0.1:{edge.port}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as session:
        async with session.get(f"{https}/api/users/echo") as resp:
            assert resp.status == 200
            echo = await resp.json()
        assert dict((k.lower(), v) for k, v in echo["headers"])["x-forwarded-proto"] == "https"

        # A WebSocket over TLS: the tunnel runs on the TLS transport (wss://).
        big = secrets.token_bytes(512 * 1024)
        async with session.ws_connect(f"wss://127.0.0.1:{edge.port}/api/users/ws") as ws:
            assert (await ws.receive_json(timeout=5))["service"] == "users"
            await ws.send_bytes(big)
            assert await ws.receive_bytes(timeout=10) == big

        async with session.get(
            f"http://127.0.0.1:{redirect_port}/api/users/echo?x=1", allow_redirects=False
        ) as resp:
            assert resp.status == 308
            assert resp.headers["Location"] == f"{https}/api/users/echo?x=1"
        async with session.post(
            f"http://127.0.0.1:{redirect_port}/api/users/echo", data=b"hi"
        ) as resp:  # followed: 308 keeps the method and body
            assert resp.status == 200
            assert (await resp.json())["method"] == "POST"

    # TLS 1.2 is accepted; below it the edge refuses the handshake. The old client
    # drops to security level 0 so that it really offers TLS 1.1 (OpenSSL's
    # defaults would refuse on the client side and prove nothing).
    tls12 = ssl.create_default_context()
    ca.configure_trust(tls12)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    _, writer = await asyncio.open_connection(
        "127.0.0.1", edge.port, ssl=tls12, server_hostname="127.0.0.1"
    )
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
    writer.close()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, OSError)):
        await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", edge.port, ssl=old, server_hostname="127.0.0.1"),
            10,
        )
    # Plain HTTP on the TLS port gets no HTTP answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(b"GET /api/users/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(100), 10)
    writer.close()
    assert not data.startswith(b"HTTP/1.1 200")
