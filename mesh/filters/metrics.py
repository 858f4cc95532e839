"""Outermost filter: counts every request and times it, whoever answered it (a request
switched to another protocol, 101, is counted but not timed: its handler lasts as long
as the tunnel). A sampled request's time carries its trace as an exemplar (trace and
SERVER span id), so a latency bucket in Grafana links to a trace in Jaeger."""

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
                elapsed = time.monotonic() - ex.started
                trace = ex.trace
                if trace is None or trace.span is None:  # not sampled (nearly every request)
                    m.observe_duration(self._role, route, service)(elapsed)
                else:
                    exemplar = {"trace_id": trace.trace_id_hex, "span_id": trace.span_id_hex}
                    m.observe_duration_traced(self._role, route, service)(elapsed, exemplar)
