"""Access-log filter: one line per request, whoever answered it (see mesh.telemetry.access_log).

Placed after the tracing filter, so the line carries the trace id. The line
is written when the ingress reports the exchange done (``ex.on_done``), with
the status answered, or 500 when the chain raised: the filter wraps nothing
around the rest of the chain, so a request pays no coroutine frame of its own
for its log line.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.telemetry.access_log import AccessLog


class AccessLogFilter:
    def __init__(self, log: AccessLog) -> None:
        self._log = log
        self._on_done = self._record  # bound once, not per request

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        """Log ``ex`` once it is done; a plain function returning the next handler's coroutine."""
        ex.add_done(self._on_done)
        return next_handler(ex)

    def _record(self, ex: Exchange, status: int, error: str | None) -> None:
        self._log.record(ex, status)
