"""Tracing in the demo apps, the way any service in the mesh would do it.

A service behind a sidecar must forward the trace context it received on the
calls it makes (the sidecar cannot know which outgoing call belongs to which
incoming request). The demo apps do it with OpenTelemetry's own tools:

* :func:`server_spans` (an aiohttp middleware) extracts the caller's context
  from the request's headers and makes it current while the handler runs,
  inside a SERVER span of the app's own;
* :func:`client_trace_config` is OpenTelemetry's aiohttp client
  instrumentation: every call on the session gets a CLIENT span, child of the
  current span, and its ``traceparent`` (plus ``tracestate``, ``baggage``).

Spans are exported only when an OTLP endpoint is configured
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``);
without one, OpenTelemetry's no-op tracer still passes the context through,
unchanged. Sampler, batch and exporter settings are the SDK's own OTEL_*
variables; the service name is ``OTEL_SERVICE_NAME``, else ``--name``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import aiohttp
import yarl
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_UNTRACED_PREFIXES = ("/health", "/admin/")


def setup_tracing(service_name: str) -> TracerProvider | None:
    """Install an exporting tracer provider if an OTLP endpoint is configured; else None."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not any(os.environ.get(v, "").strip() for v in _ENDPOINT_VARIABLES):
        return None
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _without_query(url: yarl.URL) -> str:
    # Queries may carry credentials; spans never get them.
    return str(url.with_query(None))


def client_trace_config() -> aiohttp.TraceConfig:
    """For ``aiohttp.ClientSession(trace_configs=[...])``: CLIENT spans, context injected."""
    return create_trace_config(url_filter=_without_query)


@web.middleware
async def server_spans(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A SERVER span per request (health and admin excepted), current while it is handled."""
    if request.path.startswith(_UNTRACED_PREFIXES):
        return await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else None
    name = f"{request.method} {route}" if route else request.method
    tracer = trace.get_tracer("meshgate.demo")
    with tracer.start_as_current_span(
        name,
        context=propagate.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "url.path": request.path,
            **({"http.route": route} if route else {}),
        },
    ) as span:
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return response
