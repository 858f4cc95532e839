"""A test OTLP/HTTP receiver: decodes ``ExportTraceServiceRequest`` protobufs, keeps the spans.

Jaeger cannot run here, but it ingests the same OTLP/HTTP payloads, so a
receiver that decodes them with ``opentelemetry-proto`` checks exactly what
Jaeger would show. It runs its own event loop in a thread, on a free port,
so it keeps receiving while a test blocks; point processes at
:attr:`OtlpReceiver.url` (``OTEL_EXPORTER_OTLP_ENDPOINT`` or a config's
``otlp_endpoint``).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

from demo.processes import free_port

KINDS = {
    PbSpan.SPAN_KIND_INTERNAL: "INTERNAL",
    PbSpan.SPAN_KIND_SERVER: "SERVER",
    PbSpan.SPAN_KIND_CLIENT: "CLIENT",
    PbSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    PbSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    return getattr(v, which)


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = _value(kv.value)
    return out


@dataclass(frozen=True)
class Event:
    name: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedSpan:
    """One decoded span, ids as lower-case hex ('' for no parent)."""

    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    events: tuple[Event, ...]
    error: bool
    resource: dict[str, Any] = field(repr=False)
    raw: bytes = field(repr=False)
    """The span's protobuf encoding, for searches of everything it carries."""


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.bodies: list[bytes] = []
        """Every decompressed payload received, for searches."""
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        # The processes of a test may still be exporting when the receiver stops (its
        # fixture is torn down before the mesh's): an upload in progress gets 2 s to
        # finish, not aiohttp's 60, so that stopping never outlasts stop()'s wait.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        if not request.content_type.startswith("application/x-protobuf"):
            return web.Response(status=415, text="protobuf only")
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.requests += 1
        self.bodies.append(body)
        for resource_spans in message.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=service,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=KINDS.get(span.kind, "UNSPECIFIED"),
                            attributes=_attributes(span.attributes),
                            events=tuple(
                                Event(e.name, _attributes(e.attributes)) for e in span.events
                            ),
                            error=span.status.code == PbStatus.STATUS_CODE_ERROR,
                            resource=resource,
                            raw=span.SerializeToString(),
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in list(self.spans) if s.trace_id == trace_id]

    def describe(self, spans: list[ReceivedSpan] | None = None) -> str:
        return "\n".join(
            f"  {s.service} {s.kind} {s.name!r} {s.trace_id}/{s.span_id}<-{s.parent_id or '-'}"
            for s in (self.spans if spans is None else spans)
        )

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        """Until ``check()`` holds; AssertionError naming ``what`` and the spans seen otherwise."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; spans:\n{self.describe()}")
            time.sleep(0.05)

    def wait_for_trace(
        self, trace_id: str, count: int, timeout: float = 15.0
    ) -> list[ReceivedSpan]:
        """Until at least ``count`` spans of ``trace_id`` arrived; returns them."""
        self.wait_for(
            lambda: len(self.trace(trace_id)) >= count, f"{count} spans of {trace_id}", timeout
        )
        return self.trace(trace_id)
