"""The demo auth service over real HTTP, checked with the edge's own verifiers."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from demo.auth_service import (
    AuthServiceSettings,
    create_app,
    main,
    mint_token,
    public_jwk,
)
from edge.auth.errors import AuthError
from edge.auth.introspection import IntrospectionSettings, IntrospectionVerifier
from edge.auth.introspection_http import HttpIntrospector, client_basic_authorization
from edge.auth.jwks import JwksCache, JwksCacheSettings, parse_jwks
from edge.auth.jwks_http import HttpJwksFetcher
from edge.auth.jwt_verifier import JwtSettings, JwtVerifier

ISSUER = "http://auth.demo"
AUDIENCE = "meshgate"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ManualClock:
    """Starts at the real time (tokens are minted with real timestamps), moves when told."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class AuthService:
    server: TestServer
    session: aiohttp.ClientSession
    clock: ManualClock
    settings: AuthServiceSettings

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post_form(
        self, path: str, data: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        async with self.session.post(self.url(path), data=data, headers=headers) as response:
            return response.status, await response.json(), response

    async def token(self, username: str, password: str) -> str:
        status, body, _ = await self.post_form(
            "/auth/token", {"grant_type": "password", "username": username, "password": password}
        )
        assert status == 200, body
        token: str = body["access_token"]
        return token

    async def introspect(
        self, token: str, client: tuple[str, str] = ("edge", "edge-secret")
    ) -> Any:
        status, body, _ = await self.post_form(
            "/auth/introspect",
            {"token": token},
            {"Authorization": client_basic_authorization(*client)},
        )
        assert status == 200, body
        return body

    def edge_verifier(
        self, edge_clock: ManualClock, cooldown_s: float = 30.0
    ) -> tuple[JwtVerifier, JwksCache]:
        """The edge side: JWKS over HTTP into a cache, and a verifier on top."""
        fetch = HttpJwksFetcher(self.url("/.well-known/jwks.json"), self.session)
        cache = JwksCache(fetch, edge_clock, JwksCacheSettings(cooldown_s=cooldown_s))
        settings = JwtSettings(issuer=ISSUER, audience=AUDIENCE, leeway_s=0)
        return JwtVerifier(settings, cache, edge_clock), cache


@asynccontextmanager
async def running(settings: AuthServiceSettings) -> AsyncIterator[AuthService]:
    clock = ManualClock()
    server = TestServer(create_app(settings, clock=clock), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield AuthService(server, session, clock, settings)
    finally:
        await server.close()


@pytest.fixture
async def auth() -> AsyncIterator[AuthService]:
    async with running(AuthServiceSettings(issuer=ISSUER, audience=AUDIENCE)) as service:
        yield service


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
async def test_password_grant_tokens_verify_at_the_edge(algorithm: str) -> None:
    settings = AuthServiceSettings(issuer=ISSUER, audience=AUDIENCE, algorithm=algorithm)
    async with running(settings) as auth:
        status, body, response = await auth.post_form(
            "/auth/token", {"grant_type": "password", "username": "alice", "password": "wonderland"}
        )
        assert status == 200
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 900
        assert response.headers["Cache-Control"] == "no-store"
        token = body["access_token"]
        assert jwt.get_unverified_header(token)["alg"] == algorithm

        verifier, _ = auth.edge_verifier(ManualClock())
        claims = await verifier.verify(token)
        assert (claims.subject, claims.roles, claims.email) == (
            "alice",
            ("user",),
            "alice@example.com",
        )
        assert claims.issuer == ISSUER and claims.audience == (AUDIENCE,)

        bob = await verifier.verify(await auth.token("bob", "builder"))
        assert bob.roles == ("admin",)


async def test_client_credentials_by_basic_and_by_form(auth: AuthService) -> None:
    verifier, _ = auth.edge_verifier(ManualClock())
    basic = {"Authorization": client_basic_authorization("reporting", "reporting-secret")}
    status, body, _ = await auth.post_form(
        "/auth/token", {"grant_type": "client_credentials"}, basic
    )
    assert status == 200, body
    claims = await verifier.verify(body["access_token"])
    assert (claims.subject, claims.client_id, claims.roles) == (
        "reporting",
        "reporting",
        ("service",),
    )

    status, body, _ = await auth.post_form(
        "/auth/token",
        {
            "grant_type": "client_credentials",
            "client_id": "reporting",
            "client_secret": "reporting-secret",
        },
    )
    assert status == 200, body
    assert (await verifier.verify(body["access_token"])).subject == "reporting"


REPORTING_BASIC = {"Authorization": client_basic_authorization("reporting", "reporting-secret")}


@pytest.mark.parametrize(
    ("data", "headers", "status", "error"),
    [
        (
            {"grant_type": "password", "username": "alice", "password": "nope"},
            None,
            400,
            "invalid_grant",
        ),
        (
            {"grant_type": "password", "username": "mallory", "password": "x"},
            None,
            400,
            "invalid_grant",
        ),
        ({"grant_type": "password", "username": "alice"}, None, 400, "invalid_request"),
        ({"username": "alice", "password": "wonderland"}, None, 400, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, None, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "reporting", "client_secret": "no"},
            None,
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials"},
            {"Authorization": client_basic_authorization("alice", "wonderland")},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "reporting"},
            REPORTING_BASIC,
            400,
            "invalid_request",
        ),
        (
            {"grant_type": "client_credentials"},
            {"Authorization": "Basic !!!"},
            400,
            "invalid_request",
        ),
    ],
)
async def test_bad_grants_get_oauth2_errors(
    auth: AuthService,
    data: dict[str, str],
    headers: dict[str, str] | None,
    status: int,
    error: str,
) -> None:
    got_status, body, response = await auth.post_form("/auth/token", data, headers)
    assert (got_status, body["error"]) == (status, error)
    assert body["error_description"]
    assert "access_token" not in body
    assert response.headers["Cache-Control"] == "no-store"
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    for secret in ("nope", "wonderland", "reporting-secret"):
        assert secret not in str(body)


async def test_token_endpoint_wants_a_form(auth: AuthService) -> None:
    async with auth.session.post(
        auth.url("/auth/token"), json={"grant_type": "password"}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


async def test_jwks_is_cacheable_and_public_only(auth: AuthService) -> None:
    async with auth.session.get(auth.url("/.well-known/jwks.json")) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "public, max-age=300"
        document = await response.json()
    (key,) = document["keys"]
    assert key["alg"] == "ES256" and key["use"] == "sig" and key["kty"] == "EC"
    assert "d" not in key
    keyset = parse_jwks(document)
    assert keyset.rejected == ()
    assert list(keyset.keys) == [key["kid"]]


async def test_rotation_flow(auth: AuthService) -> None:
    edge_clock = ManualClock()
    verifier, cache = auth.edge_verifier(edge_clock, cooldown_s=30)
    old_token = await auth.token("alice", "wonderland")
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    await verifier.verify(old_token)
    assert cache.stats().fetches == 1

    # Only an admin may rotate.
    async with auth.session.post(auth.url("/auth/rotate")) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with auth.session.post(
        auth.url("/auth/rotate"), headers={"Authorization": f"Bearer {old_token}"}
    ) as response:
        assert response.status == 403
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    bob = await auth.token("bob", "builder")
    async with auth.session.post(
        auth.url("/auth/rotate"), headers={"Authorization": f"Bearer {bob}"}
    ) as response:
        assert response.status == 200
        rotated = await response.json()
    assert rotated["retired_kid"] == old_kid
    new_kid = rotated["kid"]
    assert new_kid != old_kid
    assert rotated["retired_published_until"] == pytest.approx(auth.clock() + 1200)

    async with auth.session.get(auth.url("/.well-known/jwks.json")) as response:
        assert {k["kid"] for k in (await response.json())["keys"]} == {old_kid, new_kid}

    new_token = await auth.token("alice", "wonderland")
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    # The edge fetched moments ago: flood protection holds the new kid back for
    # the rest of the cooldown (the documented trade-off)...
    with pytest.raises(AuthError, match="unknown kid"):
        await verifier.verify(new_token)
    # ...and the first request after the cooldown fetches and is accepted.
    edge_clock.advance(30)
    assert (await verifier.verify(new_token)).subject == "alice"
    assert cache.stats().fetches == 2
    # Tokens signed by the retired key keep verifying during the grace period.
    verifier.clear_cache()
    assert (await verifier.verify(old_token)).subject == "alice"

    # After the grace period the retired key is gone from the JWKS.
    auth.clock.advance(1200 + 1)
    async with auth.session.get(auth.url("/.well-known/jwks.json")) as response:
        assert {k["kid"] for k in (await response.json())["keys"]} == {new_kid}
    assert (await auth.introspect(old_token)) == {"active": False}


async def test_a_rotated_key_is_accepted_as_soon_as_it_is_published(auth: AuthService) -> None:
    edge_clock = ManualClock()
    verifier, cache = auth.edge_verifier(edge_clock, cooldown_s=30)
    await verifier.verify(await auth.token("alice", "wonderland"))
    edge_clock.advance(60)  # the edge's last fetch is older than the cooldown

    bob = await auth.token("bob", "builder")
    async with auth.session.post(
        auth.url("/auth/rotate"), headers={"Authorization": f"Bearer {bob}"}
    ) as response:
        assert response.status == 200
    claims = await verifier.verify(await auth.token("alice", "wonderland"))
    assert claims.subject == "alice"
    assert cache.stats().fetches == 2


async def test_introspection_endpoint(auth: AuthService) -> None:
    token = await auth.token("alice", "wonderland")
    answer = await auth.introspect(token)
    assert answer["active"] is True
    assert (answer["sub"], answer["username"], answer["roles"]) == ("alice", "alice", ["user"])
    assert (answer["iss"], answer["aud"], answer["token_type"]) == (ISSUER, AUDIENCE, "Bearer")
    assert answer["exp"] == pytest.approx(auth.clock() + 900, abs=1)

    header, payload, signature = token.split(".")
    for bad in ("garbage", f"{header}.{payload}x.{signature}", "a" * 10_000):
        assert await auth.introspect(bad) == {"active": False}
    # A well-signed token for another issuer is not ours.
    other = ec.generate_private_key(ec.SECP256R1())
    foreign = mint_token(other, "k", "alice", ["admin"], "https://evil", AUDIENCE, 60)
    assert await auth.introspect(foreign) == {"active": False}

    auth.clock.advance(900)
    assert await auth.introspect(token) == {"active": False}


@pytest.mark.parametrize(
    ("headers", "data", "status", "error"),
    [
        ({}, {"token": "x"}, 401, "invalid_client"),
        (
            {"Authorization": client_basic_authorization("reporting", "reporting-secret")},
            {"token": "x"},
            401,
            "invalid_client",
        ),
        (
            {"Authorization": client_basic_authorization("edge", "wrong")},
            {"token": "x"},
            401,
            "invalid_client",
        ),
        (
            {"Authorization": client_basic_authorization("edge", "edge-secret")},
            {},
            400,
            "invalid_request",
        ),
    ],
)
async def test_introspection_requires_an_authorized_client(
    auth: AuthService, headers: dict[str, str], data: dict[str, str], status: int, error: str
) -> None:
    got_status, body, _ = await auth.post_form("/auth/introspect", data, headers)
    assert (got_status, body["error"]) == (status, error)


async def test_edge_introspection_mode_against_the_service(auth: AuthService) -> None:
    clock = ManualClock()
    call = HttpIntrospector(
        auth.url("/auth/introspect"), auth.session, client_id="edge", client_secret="edge-secret"
    )
    verifier = IntrospectionVerifier(
        IntrospectionSettings(issuer=ISSUER, audience=AUDIENCE), call, clock
    )
    token = await auth.token("bob", "builder")
    claims = await verifier.verify(token)
    assert (claims.subject, claims.roles) == ("bob", ("admin",))
    await verifier.verify(token)
    assert verifier.stats().calls == 1
    with pytest.raises(AuthError, match="token inactive"):
        await verifier.verify("not-a-token")


async def test_valid_tokens_keep_working_with_the_auth_service_stopped() -> None:
    settings = AuthServiceSettings(issuer=ISSUER, audience=AUDIENCE)
    edge_clock = ManualClock()
    async with running(settings) as auth:
        verifier, cache = auth.edge_verifier(edge_clock)
        first = await auth.token("alice", "wonderland")
        later = [await auth.token("bob", "builder"), await auth.token("alice", "wonderland")]
        await verifier.verify(first)
        await auth.server.close()  # the auth service goes away

        # Tokens never seen before verify on the cached keys (a real signature check).
        assert (await verifier.verify(later[0])).subject == "bob"
        # Past the JWKS max-age, refreshes fail; the last good keys keep serving.
        edge_clock.advance(400)
        assert (await verifier.verify(later[1])).subject == "alice"
        for _ in range(5):
            await asyncio.sleep(0.05)
            if cache.stats().failures:
                break
        stats = cache.stats()
        assert stats.failures == 1
        assert stats.stale
        assert stats.age_s is not None and stats.age_s >= 400
        assert stats.last_error is not None


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="rotation_grace_s"):
        AuthServiceSettings(issuer=ISSUER, audience=AUDIENCE, token_ttl_s=900, rotation_grace_s=60)
    with pytest.raises(ValueError, match="algorithm"):
        AuthServiceSettings(issuer=ISSUER, audience=AUDIENCE, algorithm="HS256")
    assert AuthServiceSettings(issuer=ISSUER, audience=AUDIENCE).grace_s == 1200


@pytest.mark.parametrize(
    ("private_key", "alg"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    ],
)
def test_mint_token_is_reusable(private_key: Any, alg: str) -> None:
    token = mint_token(
        private_key,
        "kid-1",
        "alice",
        ["user"],
        ISSUER,
        AUDIENCE,
        60,
        email="a@example.com",
        now=1000,
    )
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": "kid-1", "typ": "JWT"}
    claims = jwt.decode(
        token,
        private_key.public_key(),
        algorithms=[alg],
        audience=AUDIENCE,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert {k: claims[k] for k in ("iss", "sub", "iat", "nbf", "exp", "roles", "email")} == {
        "iss": ISSUER,
        "sub": "alice",
        "iat": 1000,
        "nbf": 1000,
        "exp": 1060,
        "roles": ["user"],
        "email": "a@example.com",
    }
    assert public_jwk(private_key, "kid-1")["alg"] == alg


def test_main_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["--issuer", ISSUER, "--audience", AUDIENCE, "--algorithm", "HS256"])
    with pytest.raises(SystemExit):
        main(["--issuer", ISSUER, "--audience", AUDIENCE, "--rotation-grace", "1"])


async def test_runs_as_a_module() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo.auth_service",
        "--port",
        str(port),
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--algorithm",
        "RS256",
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while True:
                try:
                    async with session.get(f"{base}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert process.returncode is None, "auth service exited"
                assert time.monotonic() < deadline, "auth service did not start"
                await asyncio.sleep(0.1)
            verifier = JwtVerifier(
                JwtSettings(issuer=ISSUER, audience=AUDIENCE),
                JwksCache(HttpJwksFetcher(f"{base}/.well-known/jwks.json", session), time.time),
                time.time,
            )
            async with session.post(
                f"{base}/auth/token",
                data={"grant_type": "password", "username": "alice", "password": "wonderland"},
            ) as response:
                token = (await response.json())["access_token"]
            claims = await verifier.verify(token)
            assert claims.subject == "alice"
            assert jwt.get_unverified_header(token)["alg"] == "RS256"
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()
