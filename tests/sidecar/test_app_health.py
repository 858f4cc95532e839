"""``/health/app``: the app's verdict for Consul's check, from a real app on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from demo.processes import free_port
from sidecar.app_health import PATH, AppHealth


@pytest.fixture
async def app_url() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """An app whose /health answers the status the test sets (``state["status"]``)."""
    state = {"status": 200}

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": state["status"] == 200}, status=state["status"])

    app = web.Application()
    app.router.add_get("/health", health)
    server = TestServer(app)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/health", state
    finally:
        await server.close()


async def ask(url: str, timeout_s: float = 2.0) -> tuple[int, dict[str, object]]:
    health = AppHealth(url, timeout_s)
    admin = web.Application()
    admin.router.add_get(PATH, health.handle)
    async with TestClient(TestServer(admin)) as client:
        resp = await client.get(PATH)
        body = await resp.json()
    await health.close()
    return resp.status, body


@pytest.mark.parametrize(
    ("app_status", "verdict"),
    [(200, 200), (204, 200), (429, 429), (500, 503), (503, 503), (404, 503), (302, 503)],
)
async def test_the_apps_answer_becomes_consuls_verdict(
    app_url: tuple[str, dict[str, int]], app_status: int, verdict: int
) -> None:
    url, state = app_url
    state["status"] = app_status
    status, body = await ask(url)
    assert status == verdict
    assert body == {"app": url, "status": app_status}


async def test_an_app_that_does_not_answer_is_critical() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    status, body = await ask(url)
    assert status == 503
    assert body["app"] == url and "error" in body


async def test_an_app_too_slow_is_critical() -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/health", slow)
    async with TestServer(app) as server:
        status, body = await ask(f"http://127.0.0.1:{server.port}/health", timeout_s=0.2)
    assert status == 503
    assert body["error"] == "TimeoutError"
