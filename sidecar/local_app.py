"""The inbound terminal handler: every request goes to the local app."""

from __future__ import annotations

from aiohttp import web

from mesh.exchange import Exchange
from mesh.proxy import Proxy
from mesh.snapshot import Instance


class LocalApp:
    def __init__(self, proxy: Proxy, service: str, host: str, port: int) -> None:
        self._proxy = proxy
        self._service = service
        self._instances = (Instance(id="local-app", service=service, address=host, port=port),)

    async def __call__(self, ex: Exchange) -> web.StreamResponse:
        ex.service = self._service
        ex.route = "inbound"
        return await self._proxy.forward(ex, self._instances)
