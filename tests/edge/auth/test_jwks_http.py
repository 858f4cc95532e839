"""HttpJwksFetcher against a real aiohttp server on a local socket, and parse_max_age."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edge.auth.jwks_http import HttpJwksFetcher, JwksFetchError, parse_max_age


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


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/error", "JWKS endpoint answered HTTP 503"),
        ("/redirect", "JWKS endpoint answered HTTP 302"),
        ("/not-json", "JWKS body is not JSON"),
        ("/huge", "JWKS body too large"),
    ],
)
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
