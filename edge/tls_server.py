"""The TLS side of the edge's listener: the certificates it serves, each new handshake
given the one for the server name the client asks for (SNI), all of them replaced
together by a reload (see :mod:`mesh.config.reload`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edge.tls import TlsConfig
from edge.tls_certificates import ServedCertificates, load_certificates
from mesh.config.reload import Reload
from mesh.server_tls import SwappableServerContext

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from edge.tls_metrics import TlsCertificateMetrics


class ServerTls(SwappableServerContext):
    """The listener's SSL context (:attr:`context`), whose SNI callback picks each
    handshake's certificate from the set loaded last (see the base class)."""

    def __init__(self, config: TlsConfig, metrics: TlsCertificateMetrics | None = None) -> None:
        """Loads every certificate of ``config``; raises ConfigError as
        :func:`edge.tls_certificates.load_certificates` does."""
        self._config = config
        self._metrics = metrics
        served = load_certificates(config)
        super().__init__(served.default.context)
        self._serve(served)

    @property
    def served(self) -> ServedCertificates:
        """The set new handshakes are served from."""
        return self._served

    def view(self) -> Mapping[str, Any]:
        """The admin listener's ``/tls``: every certificate served, its names and expiry."""
        return {"min_version": self._config.min_version, **self._served.view()}

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """Every certificate and key read again (also when their paths are unchanged: that
        is how a renewed certificate is picked up), and ``certificates`` applied as the
        file now has it. None when the file turns TLS off; ``min_version`` and
        ``redirect_http``, like turning TLS on or off, wait for a restart. Raises
        ConfigError naming the file that cannot be loaded (nothing is swapped then)."""
        if config.tls is None:
            return None
        fresh = load_certificates(
            config.tls.model_copy(update={"min_version": self._config.min_version})
        )
        return Reload(
            ("tls.cert_file", "tls.key_file", "tls.certificates"), lambda: self._serve(fresh)
        )

    def _serve(self, served: ServedCertificates) -> None:
        self._served = served
        self.swap_choice(served.table.select)  # one call per handshake, no more
        if self._metrics is not None:
            self._metrics.serving(served)
