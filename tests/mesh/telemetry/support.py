"""Exchanges on mocked requests, and a Tracing that records into memory."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mesh.exchange import Exchange
from mesh.telemetry.config import TracingConfig
from mesh.telemetry.tracing import Tracing
from mesh.telemetry.tracing_settings import resolve_tracing


def make_exchange(
    headers: Mapping[str, str] | None = None,
    path: str = "/api/orders/7",
    method: str = "GET",
) -> Exchange:
    """An exchange as the ingress builds it: upstream headers copied from the request's."""
    all_headers = {"Host": "gw.example:8080", **(headers or {})}
    request = make_mocked_request(method, path, headers=all_headers)
    return Exchange(
        request=request,
        path=path,
        query="",
        request_id="req-0001",
        client_ip="192.0.2.7",
        upstream_headers=CIMultiDict(all_headers),
    )


def headers_sent(ex: Exchange) -> CIMultiDict[str]:
    """The headers an upstream attempt of ``ex`` would send now (see Exchange.upstream_items)."""
    return CIMultiDict(ex.upstream_items())


class Recorder:
    """A Tracing whose finished spans land in ``spans``."""

    def __init__(self, **config: object) -> None:
        self.exporter = InMemorySpanExporter()
        settings = resolve_tracing(TracingConfig.model_validate(config), {}, "test-service")
        self.tracing = Tracing(settings, processor=SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        [span] = [s for s in self.spans if s.name == name]
        return span
