"""The app's health, answered on the sidecar's admin listener (``/health/app``).

Consul's HTTP check normally calls the app's health path through the sidecar's
inbound listener, which tests the whole path the mesh uses. With mesh TLS that
listener takes only clients holding a certificate from the Connect CA, which
Consul's checks do not present; so the check calls this endpoint instead (as
Consul's own Connect proxies expose a health path on a plain listener). It
asks the app directly and answers with the app's verdict: 200 when the app
answered 2xx, 429 when it answered 429 (Consul: warning), 503 otherwise.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

PATH = "/health/app"


class AppHealth:
    """``GET /health/app`` → the app's health path, with ``timeout_s`` to answer."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, _: web.Request) -> web.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(self._url, allow_redirects=False) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            return web.json_response({"app": self._url, "error": detail}, status=503)
        verdict = 200 if 200 <= status < 300 else 429 if status == 429 else 503
        return web.json_response({"app": self._url, "status": status}, status=verdict)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
