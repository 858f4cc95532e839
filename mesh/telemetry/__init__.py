"""Telemetry shared by the edge and the sidecar: traces, metrics, access logs.

- ``config``: the ``telemetry`` section (tracing, access_log);
- ``tracing_settings``: config + OTEL_* variables → the settings in force (pure);
- ``sampling``: the sampling decision, equal to the SDK's (pure);
- ``propagation``: trace context headers (W3C by hand when unsampled, SDK otherwise);
- ``tracing``: the tracer provider and exporter, per-request traces, ``add_event``
  and ``child_span`` for the rest of the proxy;
- ``recorded_span``: meshgate's own spans, handed to the span processors (as SDK
  ``ReadableSpan`` objects) once ended;
- ``otlp_encoding``, ``otlp_exporter``: spans to OTLP/HTTP protobuf, encoded by hand;
- ``upstream``: one upstream attempt's CLIENT span and duration histogram;
- ``metrics``: the Prometheus series every process has;
- ``exposition``: what ``/metrics`` answers, aggregated over workers when there are several;
- ``access_log``: one JSON line per request.

The filters that use them are in :mod:`mesh.filters` (``tracing``, ``access_log``,
``metrics``).
"""
