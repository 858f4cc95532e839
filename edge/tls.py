"""TLS termination at the edge: the ``tls`` config section and the server SSLContext.

With ``tls`` set, the edge's listener speaks HTTPS only (TLS 1.2 or newer,
the certificate chain and key from files) and tells services
``X-Forwarded-Proto: https``. ``redirect_http`` adds a plain-HTTP listener that
answers every request with a 308 to the same path on HTTPS
(:mod:`edge.https_redirect`). :class:`ServerTls` lets a reload replace the
certificate and key while the listener serves (see :mod:`mesh.config.reload`).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Literal

from mesh.config.errors import ConfigError
from mesh.config.reload import Reload
from mesh.config.types import Frozen, Port
from mesh.server_tls import SwappableServerContext

if TYPE_CHECKING:
    from edge.config import EdgeConfig

_MIN_VERSION = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}


class RedirectHttpConfig(Frozen):
    """A plain-HTTP listener that redirects to HTTPS."""

    host: str = "0.0.0.0"
    port: Port = 80
    https_port: Port | None = None
    """The port in the Location (default: the edge's listen port; omitted when 443),
    e.g. 443 when a load balancer publishes the edge's 8443 there."""


class TlsConfig(Frozen):
    """Terminate TLS on the edge's listener."""

    cert_file: str
    """PEM certificate chain: the server certificate first, then intermediates."""
    key_file: str
    """PEM private key of the certificate (unencrypted)."""
    min_version: Literal["TLS1.2", "TLS1.3"] = "TLS1.2"
    redirect_http: RedirectHttpConfig | None = None
    """Also listen for plain HTTP and redirect (308) to HTTPS; null: no such listener."""


def server_ssl_context(config: TlsConfig) -> ssl.SSLContext:
    """A server context with the certificate loaded and TLS below ``min_version`` refused.

    Uses Python's secure defaults (no compression, modern AEAD ciphers for
    TLS 1.2, server cipher preference). Offers ``http/1.1`` by ALPN. Raises
    ConfigError naming the file when the certificate or key cannot be loaded.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = _MIN_VERSION[config.min_version]
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
    except FileNotFoundError as exc:
        raise ConfigError(exc.filename or config.cert_file, "TLS file not found") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            config.cert_file, f"cannot load the TLS certificate and key: {exc}"
        ) from None
    return context


class ServerTls(SwappableServerContext):
    """The listener's SSL context, whose certificate and key a reload can replace
    (each new handshake gets the files loaded last: see the base class)."""

    def __init__(self, config: TlsConfig) -> None:
        self._config = config
        super().__init__(server_ssl_context(config))

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """The certificate and key read again (also when their paths are unchanged: that
        is how a renewed certificate is picked up). None when the file turns TLS off;
        ``min_version`` and ``redirect_http``, like turning TLS on or off, wait for a
        restart. Raises ConfigError naming the file that cannot be loaded."""
        if config.tls is None:
            return None
        fresh = server_ssl_context(
            config.tls.model_copy(update={"min_version": self._config.min_version})
        )

        return Reload(("tls.cert_file", "tls.key_file"), lambda: self.swap(fresh))
