"""IntrospectionVerifier (RFC 7662) with an injected call, and HttpIntrospector over HTTP
(with aiohttp, and through the edge's transport)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edge.auth.errors import AuthError
from edge.auth.introspection import (
    IntrospectionSettings,
    IntrospectionUnavailable,
    IntrospectionVerifier,
)
from edge.auth.introspection_http import (
    HttpIntrospector,
    IntrospectionHttpError,
    client_basic_authorization,
)
from edge.auth.service_url import ServiceCall, ServiceUrl
from mesh.mtls.contexts import MeshTls
from mesh.snapshot import Instance, ServiceEntry, make_snapshot
from mesh.transport.fast import FastTransport

ISSUER = "https://auth.test"
AUDIENCE = "meshgate"


class FakeIntrospectionEndpoint:
    """Answers per token from ``answers``; counts calls; can fail or block."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.calls = 0
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, token: str) -> Mapping[str, Any]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        answer: Mapping[str, Any] = self.answers.get(token, {"active": False})
        return answer


@pytest.fixture
def endpoint(clock: Any) -> FakeIntrospectionEndpoint:
    fake = FakeIntrospectionEndpoint()
    fake.answers["alice-token"] = {
        "active": True,
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": clock() + 120,
        "roles": ["user"],
        "scope": "orders:read",
        "username": "alice",
    }
    fake.answers["machine-token"] = {
        "active": True,
        "client_id": "reporting",
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "exp": clock() + 3600,
        "roles": ["service"],
    }
    return fake


def make(endpoint: Any, clock: Any, **overrides: Any) -> IntrospectionVerifier:
    settings = IntrospectionSettings(**{"issuer": ISSUER, "audience": AUDIENCE, **overrides})
    return IntrospectionVerifier(settings, endpoint, clock)


async def test_active_answer_gives_claims_and_is_cached_until_exp(
    endpoint: FakeIntrospectionEndpoint, clock: Any
) -> None:
    verifier = make(endpoint, clock)
    claims = await verifier.verify("alice-token")
    assert (claims.subject, claims.roles, claims.scopes) == ("alice", ("user",), ("orders:read",))
    assert claims.expires_at == clock() + 120
    clock.advance(119)
    assert await verifier.verify("alice-token") is claims
    assert endpoint.calls == 1
    clock.advance(1)  # exp reached: asked again, and the auth service now says expired
    endpoint.answers["alice-token"] = {"active": False}
    with pytest.raises(AuthError, match="token inactive"):
        await verifier.verify("alice-token")
    assert endpoint.calls == 2
    assert verifier.stats().cache_hits == 1


async def test_active_answer_is_cached_at_most_max_ttl(
    endpoint: FakeIntrospectionEndpoint, clock: Any
) -> None:
    verifier = make(endpoint, clock, max_ttl_s=60)
    claims = await verifier.verify("machine-token")
    assert claims.subject == "reporting"  # no sub: the client id names the caller
    assert claims.client_id == "reporting"
    clock.advance(59)
    await verifier.verify("machine-token")
    assert endpoint.calls == 1
    clock.advance(1)
    await verifier.verify("machine-token")
    assert endpoint.calls == 2


async def test_answer_without_exp_is_cached_for_max_ttl(
    endpoint: FakeIntrospectionEndpoint, clock: Any
) -> None:
    endpoint.answers["no-exp"] = {"active": True, "sub": "svc", "iss": ISSUER, "aud": AUDIENCE}
    verifier = make(endpoint, clock, max_ttl_s=30)
    assert (await verifier.verify("no-exp")).expires_at is None
    clock.advance(29)
    await verifier.verify("no-exp")
    clock.advance(1)
    await verifier.verify("no-exp")
    assert endpoint.calls == 2


async def test_negative_answers_are_cached_briefly(
    endpoint: FakeIntrospectionEndpoint, clock: Any
) -> None:
    verifier = make(endpoint, clock)
    for _ in range(10):
        with pytest.raises(AuthError) as refused:
            await verifier.verify("revoked-token")
        assert (refused.value.status, refused.value.description) == (401, "token inactive")
    assert endpoint.calls == 1
    clock.advance(5)
    with pytest.raises(AuthError):
        await verifier.verify("revoked-token")
    assert endpoint.calls == 2


@pytest.mark.parametrize(
    ("answer", "description"),
    [
        ({"active": True, "sub": "a", "iss": ISSUER, "aud": AUDIENCE, "exp": 1}, "token expired"),
        ({"active": True, "sub": "a", "iss": "https://evil", "aud": AUDIENCE}, "issuer mismatch"),
        ({"active": True, "sub": "a", "aud": AUDIENCE}, "missing iss"),
        ({"active": True, "sub": "a", "iss": ISSUER, "aud": "other"}, "audience mismatch"),
        ({"active": True, "sub": "a", "iss": ISSUER}, "missing aud"),
        ({"active": True, "iss": ISSUER, "aud": AUDIENCE}, "missing sub"),
        ({"active": True, "sub": "a", "iss": ISSUER, "aud": AUDIENCE, "exp": "x"}, "invalid exp"),
        ({"active": True, "sub": "a\nb", "iss": ISSUER, "aud": AUDIENCE}, "invalid sub"),
    ],
)
async def test_active_answers_are_still_checked(
    endpoint: FakeIntrospectionEndpoint, clock: Any, answer: dict[str, Any], description: str
) -> None:
    endpoint.answers["t"] = answer
    verifier = make(endpoint, clock)
    for _ in range(2):
        with pytest.raises(AuthError) as refused:
            await verifier.verify("t")
        assert (refused.value.code, refused.value.description) == ("invalid_token", description)
    assert endpoint.calls == 1  # refusals are cached like inactive answers


async def test_issuer_and_audience_checks_are_optional(
    endpoint: FakeIntrospectionEndpoint, clock: Any
) -> None:
    endpoint.answers["t"] = {"active": True, "sub": "a"}
    verifier = make(endpoint, clock, issuer=None, audience=None)
    assert (await verifier.verify("t")).subject == "a"


@pytest.mark.parametrize("answer", [{"sub": "a"}, {"active": "true"}, ["active"]])
async def test_answers_without_boolean_active_are_unavailable_not_cached(
    endpoint: FakeIntrospectionEndpoint, clock: Any, answer: Any
) -> None:
    endpoint.answers["t"] = answer
    verifier = make(endpoint, clock)
    for _ in range(2):
        with pytest.raises(IntrospectionUnavailable):
            await verifier.verify("t")
    assert endpoint.calls == 2


async def test_endpoint_failure_is_unavailable_and_not_cached(
    endpoint: FakeIntrospectionEndpoint, clock: Any
) -> None:
    endpoint.failure = ConnectionError("down")
    verifier = make(endpoint, clock)
    for _ in range(2):
        with pytest.raises(IntrospectionUnavailable, match="ConnectionError"):
            await verifier.verify("alice-token")
    assert endpoint.calls == 2
    assert verifier.stats().failures == 2
    endpoint.failure = None
    assert (await verifier.verify("alice-token")).subject == "alice"


async def test_concurrent_requests_for_one_token_share_one_call(
    endpoint: FakeIntrospectionEndpoint, clock: Any
) -> None:
    endpoint.gate = asyncio.Event()
    verifier = make(endpoint, clock)
    waiters = [asyncio.create_task(verifier.verify("alice-token")) for _ in range(20)]
    other = asyncio.create_task(verifier.verify("machine-token"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert endpoint.calls == 2
    endpoint.gate.set()
    results = await asyncio.gather(*waiters, other)
    assert {claims.subject for claims in results} == {"alice", "reporting"}
    assert endpoint.calls == 2


async def test_oversized_tokens_are_refused_without_a_call(
    endpoint: FakeIntrospectionEndpoint, clock: Any
) -> None:
    with pytest.raises(AuthError, match="token too large"):
        await make(endpoint, clock).verify("x" * 8193)
    assert endpoint.calls == 0


@pytest.mark.parametrize(
    "kwargs", [{"max_ttl_s": -1}, {"negative_ttl_s": -1}, {"cache_max_entries": 0}]
)
def test_settings_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        IntrospectionSettings(**kwargs)


# ---------------------------------------------------------------- over HTTP

received: list[dict[str, Any]] = []


async def introspect(request: web.Request) -> web.Response:
    form = await request.post()
    received.append({"form": dict(form), "authorization": request.headers.get("Authorization")})
    if form.get("token") == "boom":
        return web.Response(status=500)
    if form.get("token") == "array":
        return web.json_response(["not", "an", "object"])
    return web.json_response({"active": form.get("token") == "good", "sub": "alice"})


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_post("/introspect", introspect)
    test_server = TestServer(app)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


async def test_http_introspector_posts_the_form_with_basic_auth(server: TestServer) -> None:
    received.clear()
    async with aiohttp.ClientSession() as session:
        call = HttpIntrospector(
            str(server.make_url("/introspect")),
            session,
            client_id="edge",
            client_secret="edge-secret",
        )
        assert await call("good") == {"active": True, "sub": "alice"}
        assert (await call("other"))["active"] is False
        for token in ("boom", "array"):
            with pytest.raises(IntrospectionHttpError) as failed:
                await call(token)
            assert token not in str(failed.value)
    assert received[0]["form"] == {"token": "good", "token_type_hint": "access_token"}
    assert received[0]["authorization"] == "Basic " + base64.b64encode(b"edge:edge-secret").decode()


def test_client_credentials_are_form_encoded_before_basic() -> None:
    header = client_basic_authorization("a:b", "p w%")
    assert base64.b64decode(header.removeprefix("Basic ")) == b"a%3Ab:p+w%25"


# ------------------------------------------- a catalog service, through the edge's transport


def through_transport(
    port: int, transport: FastTransport, mesh_tls: MeshTls | None = None
) -> ServiceCall:
    snapshot = make_snapshot(
        {"auth": ServiceEntry("auth", (Instance("auth-1", "auth", "127.0.0.1", port),))}, "test"
    )
    return ServiceCall(ServiceUrl(lambda: snapshot, "auth", "/introspect"), transport, mesh_tls)


async def test_through_the_transport_the_same_form_and_answers(server: TestServer) -> None:
    received.clear()
    transport = FastTransport()
    try:
        async with aiohttp.ClientSession() as session:
            call = HttpIntrospector(
                through_transport(server.port or 0, transport),
                session,
                client_id="edge",
                client_secret="edge-secret",
            )
            assert await call("good") == {"active": True, "sub": "alice"}
            assert (await call("other"))["active"] is False
            for token, message in (
                ("boom", "introspection endpoint answered HTTP 500"),
                ("array", "introspection body is not a JSON object"),
            ):
                with pytest.raises(IntrospectionHttpError) as failed:
                    await call(token)
                assert str(failed.value) == message
        assert transport.idle_connections("127.0.0.1", server.port or 0) == 1
    finally:
        await transport.close()
    assert received[0]["form"] == {"token": "good", "token_type_hint": "access_token"}
    assert received[0]["authorization"] == "Basic " + base64.b64encode(b"edge:edge-secret").decode()
    assert len(received) == 4


async def test_through_the_transport_a_refused_instance_is_unavailable_and_sent_nothing(
    server: TestServer, clock: Any
) -> None:
    """``require`` on and the instance plain: the token is never sent, and the request
    gets "unavailable" (503) as for any failed call."""
    received.clear()
    transport = FastTransport()
    try:
        async with aiohttp.ClientSession() as session:
            strict = MeshTls("meshgate-edge", require=True)
            call = HttpIntrospector(through_transport(server.port or 0, transport, strict), session)
            verifier = make(call, clock)
            with pytest.raises(IntrospectionUnavailable, match="UpstreamConnectError"):
                await verifier.verify("good")
        assert verifier.stats().failures == 1
    finally:
        await transport.close()
    assert received == []
