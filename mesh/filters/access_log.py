"""Access-log filter: one line per request, whoever answered it (see mesh.telemetry.access_log).

Placed after the tracing filter, so the line carries the trace id.
"""

from __future__ import annotations

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.telemetry.access_log import AccessLog


class AccessLogFilter:
    def __init__(self, log: AccessLog) -> None:
        self._log = log

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await next_handler(ex)
            status = response.status
            return response
        finally:
            self._log.record(ex, status)
