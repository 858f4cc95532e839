"""Outermost filter: counts every request and times it, whoever answered it."""

from __future__ import annotations

import time

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.telemetry.metrics import ProxyMetrics

_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


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
            self._m.requests.labels(
                self._role, route, service, _CLASSES.get(status // 100, "5xx")
            ).inc()
            self._m.duration.labels(self._role, route, service).observe(
                time.monotonic() - ex.started
            )
