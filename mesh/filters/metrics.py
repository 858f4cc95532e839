"""Outermost filter: counts every request and times it, whoever answered it (a request
switched to another protocol, 101, is counted but not timed: its handler lasts as long
as the tunnel)."""

from __future__ import annotations

import time

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.telemetry.metrics import ProxyMetrics, status_class


class MetricsFilter:
    def __init__(self, metrics: ProxyMetrics) -> None:
        self._m = metrics
        self._role = metrics.role

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await next_handler(ex)
            status = response.status
            return response
        finally:
            route = ex.route or "none"
            service = ex.service or "none"
            m = self._m
            m.count_request(self._role, route, service, status_class(status))()
            if status != 101:  # a switched connection lasts as long as its tunnel: not a latency
                m.observe_duration(self._role, route, service)(time.monotonic() - ex.started)
