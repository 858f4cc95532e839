"""Mesh TLS in ``/metrics``: readiness, the certificate's expiry, renewals and rotations,
and what the connections to a mesh-TLS listener became."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from mesh.mtls.contexts import MeshTls


class MeshTlsMetrics:
    """Gauges refreshed at each scrape (:meth:`refresh`), the counter as it happens
    (:meth:`replaced`, given to :class:`MeshTls` as its ``on_replace``)."""

    def __init__(self, registry: CollectorRegistry, role: str) -> None:
        self._role = role
        self.ready = Gauge(
            "meshgate_mesh_tls_ready",
            "1 once this process holds a certificate and roots from Consul's Connect CA.",
            ["role"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.expiry = Gauge(
            "meshgate_mesh_tls_certificate_expiry_timestamp_seconds",
            "When the mesh TLS certificate in use expires (Consul renews it before).",
            ["role"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.replacements = Counter(
            "meshgate_mesh_tls_replacements",
            "Certificates (renewed) and roots (rotated) taken from Consul after the first.",
            ["role", "part"],
            registry=registry,
        )

        self.inbound_connections = Counter(
            "meshgate_mesh_tls_inbound_connections",
            "Connections to a mesh-TLS listener, by what each became: tls, tls_refused "
            "(a failed handshake: no client certificate, another CA), plaintext, no_data "
            "(closed or silent before its first byte).",
            ["role", "outcome"],
            registry=registry,
        )

    def inbound_connection(self, outcome: str) -> None:
        """What a connection to the listener became (``on_connection`` of
        :class:`mesh.sniffing_site.TlsSniffingSite`)."""
        self.inbound_connections.labels(self._role, outcome).inc()

    def replaced(self, part: str) -> None:
        self.replacements.labels(self._role, part).inc()

    def refresh(self, mesh_tls: MeshTls) -> None:
        self.ready.labels(self._role).set(1 if mesh_tls.ready.is_set() else 0)
        if mesh_tls.leaf is not None:
            self.expiry.labels(self._role).set(mesh_tls.leaf.valid_before)
