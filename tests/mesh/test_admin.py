"""What /readyz reports (mesh/admin.py: readiness), and endpoints by method and path."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from mesh.admin import build_admin_app, readiness
from mesh.server import Listener


def test_ready_only_when_every_condition_holds_and_not_draining() -> None:
    assert readiness(catalog=True, listening=True, draining=False) == (
        True,
        {"catalog": True, "listening": True, "draining": False},
    )
    # The catalog is in but the port is not open yet: traffic must not come.
    ok, body = readiness(catalog=True, listening=False, draining=False)
    assert not ok and body["listening"] is False
    ok, body = readiness(catalog=True, listening=True, registered=False, draining=False)
    assert not ok and body["registered"] is False
    ok, body = readiness(catalog=True, listening=True, draining=True)
    assert not ok and body["draining"] is True


async def test_endpoints_answer_their_method_and_path_only() -> None:
    async def purge(request: web.Request) -> web.Response:
        return web.json_response({"got": (await request.read()).decode()})

    app = build_admin_app(
        ready=lambda: (True, {}),
        views={},
        registry=CollectorRegistry(),
        endpoints={("POST", "/things/purge"): purge},
    )
    listener = Listener("admin", app, "127.0.0.1", 0, shutdown_timeout=0.5)
    await listener.start()
    url = f"http://127.0.0.1:{listener.port}/things/purge"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=b"all") as resp:
                assert (resp.status, await resp.json()) == (200, {"got": "all"})
            async with session.get(url) as resp:
                assert resp.status == 405
    finally:
        await listener.stop()
