"""The OTLP/HTTP span exporter: the SDK's, with meshgate's faster protobuf encoding.

Everything but the encoding is the SDK's ``OTLPSpanExporter``: the HTTP
client, retries with backoff, and the ``OTEL_EXPORTER_OTLP_*`` settings
(headers, timeout, compression, certificates). Only the bytes are made by
:func:`mesh.telemetry.otlp_encoding.encode_request`, about four times faster
than the SDK's encoder and decoding to the same message.

The SDK offers no seam for the encoder, so :meth:`FastOTLPSpanExporter.export`
uses the exporter's HTTP client (``_client.export(bytes)``, SDK 1.4x); with
an SDK whose internals differ it falls back to the stock ``export``.

The exporter's ``requests`` session reads the environment once, when it is
made, rather than on every POST: with ``trust_env`` (the default) requests
scans every environment variable for proxies, twice, per request, which
was 1.5 of the 3.5 million instructions a POST cost (callgrind, 35
variables). :func:`settled_session` resolves what requests would take from
the environment for the endpoint (``*_PROXY``/``NO_PROXY``, ``.netrc``
credentials, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``) and turns
``trust_env`` off; changes to those variables after start-up are not seen.
With an OTLP credential provider configured, the SDK's own session is used.

When that settled session would send straight to the endpoint (no proxy for
it, no ``.netrc`` credentials), the POSTs go through the SDK's own urllib3
transport instead (``opentelemetry-exporter-http-transport``'s
``Urllib3HTTPTransport``, with the session's resolved ``verify`` and client
certificate): about 0.9 million instructions a POST against requests' 2.1
million (callgrind, 40 kB body, keep-alive). The SDK's HTTP client around the
transport is unchanged, so retries with backoff (429/502/503/504), the
timeout, compression and ``OTEL_EXPORTER_OTLP_*HEADERS`` stay the SDK's. One
difference: urllib3 is told not to follow redirects, where requests would
(an OTLP receiver does not redirect).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from mesh.telemetry.otlp_encoding import encode_request

try:  # the SDK's HTTP transports (exporter 1.4x); older exporters post through requests alone
    from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
except ImportError:  # pragma: no cover - depends on the installed exporter
    RequestsHTTPTransport = Urllib3HTTPTransport = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)


CREDENTIAL_PROVIDER_VARIABLES = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
)
"""Set, the SDK makes the session (an entry point's); meshgate leaves it alone."""
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def settled_session(endpoint: str) -> requests.Session:
    """A session sending to ``endpoint`` as requests would with ``trust_env``, without
    reading the environment per request: proxies and ``.netrc`` credentials resolved now.

    The CA bundle variables apply once the exporter has set ``verify``
    (:func:`settle_verify`).
    """
    session = requests.Session()
    session.trust_env = False
    # What Session.merge_environment_settings adds per request (NO_PROXY honoured).
    session.proxies.update(requests.utils.get_environ_proxies(endpoint))
    auth = requests.utils.get_netrc_auth(endpoint)
    if auth is not None:
        session.auth = auth
    return session


def settle_verify(session: requests.Session) -> None:
    """What requests does per request with ``trust_env``: a CA bundle from the environment
    replaces ``verify=True`` (never a certificate file or ``False`` set explicitly)."""
    if session.verify is True:
        bundle = next((os.environ[n] for n in CA_BUNDLE_VARIABLES if os.environ.get(n)), None)
        if bundle is not None:
            session.verify = bundle


def lighter_transport(client: object, session: requests.Session) -> str:
    """Point the SDK HTTP ``client`` at the SDK's urllib3 transport when ``session`` sends
    straight to the endpoint; returns the transport the client uses (``urllib3``/``requests``).

    Kept on requests: a proxy or ``.netrc`` credentials for the endpoint
    (urllib3's pool manager honours neither), a session given by the caller
    or a credential provider (not settled), and an SDK whose client does not
    hold the requests transport this expects (``_transport``, SDK 1.4x).
    """
    current = getattr(client, "_transport", None)
    if (
        RequestsHTTPTransport is None
        or Urllib3HTTPTransport is None
        or type(current) is not RequestsHTTPTransport
        or session.proxies
        or session.auth is not None
        or not isinstance(session.verify, bool | str)
    ):
        return "requests"
    cert = session.cert
    if not (cert is None or isinstance(cert, str) or _is_pair(cert)):
        return "requests"
    # verify=True: requests' own CA bundle (certifi), not urllib3's default trust store.
    verify = requests.utils.DEFAULT_CA_BUNDLE_PATH if session.verify is True else session.verify
    client._transport = Urllib3HTTPTransport(verify=verify, cert=cert)  # type: ignore[attr-defined]
    current.close()
    return "urllib3"


def _is_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's ``OTLPSpanExporter`` with meshgate's encoder and a settled session.

    Arguments are the SDK exporter's. Without a ``session``, and without a
    credential provider configured, the session is :func:`settled_session`'s.
    """

    def __init__(self, endpoint: str | None = None, **kwargs: Any) -> None:
        session: requests.Session | None = kwargs.pop("session", None)
        settled = (
            session is None
            and endpoint is not None
            and not any(os.environ.get(name) for name in CREDENTIAL_PROVIDER_VARIABLES)
        )
        if settled and endpoint is not None:
            session = settled_session(endpoint)
        super().__init__(endpoint=endpoint, session=session, **kwargs)
        if settled and session is not None:
            settle_verify(session)  # after the SDK has set verify from its own settings
            self.transport = lighter_transport(getattr(self, "_client", None), session)
            """``urllib3`` when POSTs go through the SDK's urllib3 transport, else ``requests``."""
        else:
            self.transport = "requests"

    def reads_recorded_spans(self) -> bool:
        """True when :meth:`export` reads meshgate's recorded spans from their slots
        (:func:`~mesh.telemetry.otlp_encoding.encode_recorded_span`), so that a batch
        processor may queue them as they ended, with no span contexts made for them:
        when it sends the bytes itself (the SDK's HTTP client is there). See
        :class:`mesh.telemetry.recorded_span.SpanSink`."""
        return self._client_export() is not None

    def _client_export(self) -> Callable[[bytes], Any] | None:
        """The SDK HTTP client's ``export(bytes)`` (exporter 1.4x), which POSTs an encoded
        request with the SDK's retries; None with an exporter that has none."""
        return getattr(getattr(self, "_client", None), "export", None)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        send = self._client_export()
        if send is None:
            return super().export(spans)
        if getattr(self, "_shutdown", False):
            return SpanExportResult.FAILURE
        try:
            data = encode_request(spans)
        except Exception:
            log.exception("could not encode %d spans", len(spans))
            return SpanExportResult.FAILURE
        result = send(data)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
