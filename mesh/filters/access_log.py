"""Access-log filter: one line per request, whoever answered it (see mesh.telemetry.access_log),
or per request the log's selection keeps (:mod:`mesh.telemetry.log_selection`).

Placed after the tracing filter, so the line carries the trace id.
"""

from __future__ import annotations

import time

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.telemetry.access_log import AccessLog
from mesh.telemetry.log_selection import LogSelection


class AccessLogFilter:
    def __init__(self, log: AccessLog, selection: LogSelection | None = None) -> None:
        """``selection``: which requests get a line; None (the default) every one."""
        self._log = log
        self._selection = selection

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await next_handler(ex)
            status = response.status
            return response
        finally:
            selection = self._selection
            if selection is None or selection.keeps(status, time.monotonic() - ex.started):
                self._log.record(ex, status)
