"""The listener's open state, which readiness reports (mesh/server.py)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from demo.processes import port_open
from mesh.server import Listener


async def _ok(_: web.BaseRequest) -> web.Response:
    return web.Response(text="ok")


async def test_listening_from_start_until_stop() -> None:
    listener = Listener("test", _ok, "127.0.0.1", 0)
    assert not listener.listening  # made, not started: the port is not open
    await listener.start()
    try:
        assert listener.listening and listener.port != 0
        assert port_open("127.0.0.1", listener.port)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{listener.port}/") as resp,
        ):
            assert resp.status == 200
    finally:
        await listener.stop()
    assert not listener.listening
    assert not port_open("127.0.0.1", listener.port)
