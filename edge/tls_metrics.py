"""The edge's TLS certificates in ``/metrics``: when each one served expires.

``meshgate_tls_certificate_expiry_timestamp_seconds{file}`` is the Unix time of
the certificate's notAfter, not a count of seconds left: a timestamp is right
whenever it is scraped (a countdown is stale from the moment it is set), it is
what Prometheus's conventions prefer (``*_timestamp_seconds``, as the mesh TLS
certificate's ``meshgate_mesh_tls_certificate_expiry_timestamp_seconds`` and the
blackbox exporter's ``probe_ssl_earliest_cert_expiry``), and the time left is
one subtraction in the alert: ``... - time() < 14 * 86400``.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Gauge

from edge.tls_certificates import ServedCertificates


class TlsCertificateMetrics:
    """The expiry gauge, one series per certificate file served; :meth:`serving` sets it
    at start and after each reload that replaced the certificates."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.expiry = Gauge(
            "meshgate_tls_certificate_expiry_timestamp_seconds",
            "When each TLS certificate the edge's listener serves expires (its notAfter), "
            "by certificate file.",
            ["file"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self._files: set[str] = set()

    def serving(self, certificates: ServedCertificates) -> None:
        files = set()
        for certificate in certificates.all():
            self.expiry.labels(certificate.cert_file).set(certificate.not_after.timestamp())
            files.add(certificate.cert_file)
        for file in self._files - files:
            # NaN first: in multiprocess mode a removed series keeps its file value, and
            # NaN (unlike 0, long past) sets off no expiry alert.
            self.expiry.labels(file).set(math.nan)
            self.expiry.remove(file)
        self._files = files
