"""The OTLP exporter's HTTP transport on the standard library: one kept-alive connection.

The SDK's OTLP HTTP client (retries with backoff on 429/502/503/504 and on
connection errors, the timeout, compression, ``OTEL_EXPORTER_OTLP_*HEADERS``)
sends through a pluggable transport (``opentelemetry-exporter-http-transport``,
exporter 1.4x): requests' or urllib3's. Both add layers a span exporter does
not use (a pool manager, retry objects, URL and header normalisation, response
wrappers) around the ``http.client`` connection they end up writing to.
:class:`HTTPClientTransport` writes to that connection directly: callgrind
counts about 0.3 million instructions a POST (40 kB body, keep-alive) where
urllib3's transport takes 0.93 million and requests' 2.1 million. At a batch
of 512 spans that is little per span; it matters when batches are small (a
proxy with little traffic exports every five seconds whatever it has), and the
export thread takes the proxy's GIL for all of it.

Behaviour, as the urllib3 transport's: no proxy (the exporter only picks this
transport when none applies), no redirects followed, TLS verified against
``verify`` (a CA bundle file or directory; ``False`` for none) with an optional
client certificate. Errors are returned in the result, never raised; a
connection that fails is closed, and the next request opens a new one. A
connection error (refused, reset, closed by the server, a timeout while
connecting or sending) is reported as one by
:meth:`HTTPClientTransport.is_connection_error`, so the SDK client retries it
at once (a stale kept-alive connection) and then with backoff; a timeout
waiting for the response is not (as urllib3's read timeout is not). The
timeout applies to each socket operation, not to the request as a whole.
"""

from __future__ import annotations

import http.client
import os
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy
from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport


class ResponseTimeout(TimeoutError):
    """No response within the timeout once the request was sent (not a connection error)."""


@dataclass(frozen=True, slots=True)
class HTTPClientResult(BaseHTTPResult):
    """A response (status, reason, body, headers) or an ``error``; see ``BaseHTTPResult``."""

    body: bytes = b""
    header_items: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Mapping[str, str]:
        """Case-insensitive; a header sent more than once has its values joined by commas."""
        joined: CIMultiDict[str] = CIMultiDict()
        for name, value in self.header_items:
            if name in joined:
                joined[name] = f"{joined[name]}, {value}"
            else:
                joined[name] = value
        return CIMultiDictProxy(joined)


class HTTPClientTransport(BaseHTTPTransport):
    """A ``BaseHTTPTransport`` over one kept-alive ``http.client`` connection per origin.

    ``verify``: True (the system's default trust store unless a bundle is
    given), a CA bundle file or directory, or False (no verification).
    ``cert``: a client certificate file, or (certificate, key) files.
    Thread-safe (one request at a time); the SDK exporter sends from its
    batch processor's thread.
    """

    def __init__(
        self, *, verify: bool | str = True, cert: str | tuple[str, str] | None = None
    ) -> None:
        self._verify = verify
        self._cert = cert
        self._tls: ssl.SSLContext | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._origin: tuple[str, str, int | None] | None = None
        self._targets: dict[str, tuple[tuple[str, str, int | None], str]] = {}
        self._lock = threading.Lock()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            verify = self._verify
            if verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif isinstance(verify, str) and os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            elif isinstance(verify, str):
                context = ssl.create_default_context(cafile=verify)
            else:
                context = ssl.create_default_context()
            if isinstance(self._cert, tuple):
                context.load_cert_chain(self._cert[0], self._cert[1])
            elif isinstance(self._cert, str):
                context.load_cert_chain(self._cert)
            self._tls = context
        return self._tls

    def _target(self, url: str) -> tuple[tuple[str, str, int | None], str]:
        """``url``'s origin (scheme, host, port) and request target, parsed once per URL."""
        known = self._targets.get(url)
        if known is None:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an http(s) URL: {url!r}")
            target = parts.path or "/"
            if parts.query:
                target += f"?{parts.query}"
            known = ((parts.scheme, parts.hostname, parts.port), target)
            if len(self._targets) < 16:
                self._targets[url] = known
        return known

    def _connect(
        self, origin: tuple[str, str, int | None], timeout: float | None
    ) -> http.client.HTTPConnection:
        connection = self._connection
        if connection is not None and self._origin == origin and connection.sock is not None:
            connection.sock.settimeout(timeout)
            return connection
        self._close()
        scheme, host, port = origin
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._tls_context()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.connect()
        self._connection, self._origin = connection, origin
        return connection

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        with self._lock:
            try:
                origin, target = self._target(url)
                connection = self._connect(origin, timeout)
                connection.request(method, target, body=data, headers=headers or {})
            except Exception as error:  # reported in the result, as urllib3's transport does
                self._close()
                return HTTPClientResult(error=error)
            try:
                response = connection.getresponse()
                body = response.read()
            except Exception as error:
                self._close()
                if isinstance(error, TimeoutError):
                    error = ResponseTimeout(str(error) or "timed out waiting for the response")
                return HTTPClientResult(error=error)
            if response.will_close:
                self._close()
            return HTTPClientResult(
                status_code=response.status,
                reason=response.reason,
                body=body,
                header_items=tuple(response.getheaders()),
            )

    def is_connection_error(self, exception: Exception | None) -> bool:
        """Whether ``exception`` (from a result) means the connection failed, not the server."""
        return isinstance(exception, OSError | http.client.HTTPException) and not isinstance(
            exception, ResponseTimeout
        )

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        with self._lock:
            self._close()
