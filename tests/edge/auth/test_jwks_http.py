"""HttpJwksFetcher against a real aiohttp server on a local socket (with aiohttp, and
through the edge's transport), and parse_max_age."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from demo.processes import free_port
from edge.auth.jwks import JwksCache
from edge.auth.jwks_http import HttpJwksFetcher, JwksFetchError, parse_max_age
from edge.auth.service_url import ServiceCall, ServiceUrl
from mesh.snapshot import Instance, ServiceEntry, make_snapshot
from mesh.transport.fast import FastTransport


@pytest.mark.parametrize(
    ("cache_control", "age", "expected"),
    [
        (None, None, None),
        ("", None, None),
        ("public, max-age=300", None, 300.0),
        ("max-age=300, must-revalidate", "100", 200.0),
        ("max-age=300", "400", 0.0),
        ('max-age="60"', None, 60.0),
        ("MAX-AGE=60", None, 60.0),
        ("no-store", None, 0.0),
        ("max-age=300, no-cache", None, 0.0),
        ("max-age=-1", None, None),
        ("max-age=abc", None, None),
        ("max-age=\u00b2", None, None),
        ("public", None, None),
        ("max-age=30", "x", 30.0),
    ],
)
def test_parse_max_age(cache_control: str | None, age: str | None, expected: float | None) -> None:
    assert parse_max_age(cache_control, age) == expected


JWKS = {"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256", "x": "x", "y": "y"}]}


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(JWKS, headers={"Cache-Control": "public, max-age=120"})


async def no_cache_control(request: web.Request) -> web.Response:
    return web.json_response(JWKS)


async def error(request: web.Request) -> web.Response:
    return web.Response(status=503, text="secret internal details")


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/jwks")


async def not_json(request: web.Request) -> web.Response:
    return web.Response(text="<html>")


async def huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()  # chunked: no Content-Length to refuse early
    await response.prepare(request)
    for _ in range(100):
        await response.write(b" " * 10_000)
    await response.write_eof()
    return response


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/plain", no_cache_control)
    app.router.add_get("/error", error)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/not-json", not_json)
    app.router.add_get("/huge", huge)
    test_server = TestServer(app)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def test_fetches_document_and_max_age(server: TestServer, session: Any) -> None:
    document = await HttpJwksFetcher(str(server.make_url("/jwks")), session)()
    assert document.body == JWKS
    assert document.max_age_s == 120.0
    document = await HttpJwksFetcher(str(server.make_url("/plain")), session)()
    assert document.max_age_s is None


async def test_url_is_resolved_on_every_fetch(server: TestServer, session: Any) -> None:
    resolved: list[str] = []

    async def resolve() -> str:  # e.g. a Consul look-up of the auth service
        url = str(server.make_url("/jwks"))
        resolved.append(url)
        return url

    fetch = HttpJwksFetcher(resolve, session)
    await fetch()
    await fetch()
    assert len(resolved) == 2


FAILURES = [
    ("/error", "JWKS endpoint answered HTTP 503"),
    ("/redirect", "JWKS endpoint answered HTTP 302"),
    ("/not-json", "JWKS body is not JSON"),
    ("/huge", "JWKS body too large"),
]
"""Paths of the test server that fail a fetch, and the error each gives, whichever way
the JWKS is fetched."""


@pytest.mark.parametrize(("path", "message"), FAILURES)
async def test_failures_raise_jwks_fetch_error(
    server: TestServer, session: Any, path: str, message: str
) -> None:
    with pytest.raises(JwksFetchError) as failed:
        await HttpJwksFetcher(str(server.make_url(path)), session, max_body_bytes=64 * 1024)()
    assert str(failed.value) == message
    assert "secret internal details" not in json.dumps(str(failed.value))


async def test_connection_refused_propagates(session: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(aiohttp.ClientError):
        await HttpJwksFetcher(f"http://127.0.0.1:{port}/jwks", session, timeout_s=2)()


# ------------------------------------------- a catalog service, through the edge's transport


class Catalog:
    """The snapshot a ServiceCall reads, with one ``auth`` instance at ``port``."""

    def __init__(self, port: int) -> None:
        self.move_to(port)

    def move_to(self, port: int) -> None:
        instance = Instance("auth-1", "auth", "127.0.0.1", port)
        self.current = make_snapshot({"auth": ServiceEntry("auth", (instance,))}, "test")

    def call(self, path: str, transport: FastTransport) -> ServiceCall:
        return ServiceCall(ServiceUrl(lambda: self.current, "auth", path), transport, None)


async def test_through_the_transport_the_same_document_and_max_age(
    server: TestServer, session: Any, transport: FastTransport
) -> None:
    catalog = Catalog(server.port or 0)
    document = await HttpJwksFetcher(catalog.call("/jwks", transport), session)()
    assert document.body == JWKS
    assert document.max_age_s == 120.0
    document = await HttpJwksFetcher(catalog.call("/plain", transport), session)()
    assert document.max_age_s is None
    # The fetches went through the transport (its pool holds their connection).
    assert transport.idle_connections("127.0.0.1", server.port or 0) == 1


@pytest.mark.parametrize(("path", "message"), FAILURES)
async def test_through_the_transport_the_same_failures(
    server: TestServer, session: Any, transport: FastTransport, path: str, message: str
) -> None:
    fetch = HttpJwksFetcher(
        Catalog(server.port or 0).call(path, transport), session, max_body_bytes=64 * 1024
    )
    with pytest.raises(JwksFetchError) as failed:
        await fetch()
    assert str(failed.value) == message


async def test_through_the_transport_a_failed_fetch_keeps_the_last_keys_and_is_counted(
    session: Any, transport: FastTransport, ec_jwk: dict[str, Any], clock: Any
) -> None:
    """The transport's errors reach JwksCache as aiohttp's do: a failure, counted, the
    last good keys still serving."""

    async def serve(request: web.Request) -> web.Response:
        return web.json_response({"keys": [ec_jwk]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", serve)
    auth = TestServer(app, host="127.0.0.1")
    await auth.start_server()
    try:
        catalog = Catalog(auth.port or 0)
        fetch = HttpJwksFetcher(catalog.call("/.well-known/jwks.json", transport), session)
        cache = JwksCache(fetch, clock)
        assert await cache.refresh()
        catalog.move_to(free_port())  # nothing listens there
        assert not await cache.refresh()
        stats = cache.stats()
        assert (stats.fetches, stats.failures, stats.keys) == (2, 1, 1)
        assert stats.last_error is not None
        assert stats.last_error.startswith("UpstreamConnectError: cannot connect")
        assert await cache.get_key("ec-1") is not None
    finally:
        await auth.close()
