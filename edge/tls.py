"""TLS termination at the edge: the ``tls`` config section and the server SSLContext.

With ``tls`` set, the edge's listener speaks HTTPS only (TLS 1.2 or newer,
the certificate chain and key from files) and tells services
``X-Forwarded-Proto: https``. ``redirect_http`` adds a plain-HTTP listener that
answers every request with a 308 to the same path on HTTPS
(:mod:`edge.https_redirect`).

``cert_file``/``key_file`` are the default certificate; ``certificates`` adds
more on the same listener, each chosen by the server name the client asks for
(SNI): :mod:`edge.tls_names` matches the names, :mod:`edge.tls_certificates`
loads the files, :class:`edge.tls_server.ServerTls` serves them and lets a
reload replace them all at once.
"""

from __future__ import annotations

import ssl
from typing import Literal

from pydantic import field_validator

from edge.tls_names import normalise, server_name_problem
from mesh.config.errors import ConfigError
from mesh.config.types import Frozen, Port

MinVersion = Literal["TLS1.2", "TLS1.3"]

_MIN_VERSION = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}


class RedirectHttpConfig(Frozen):
    """A plain-HTTP listener that redirects to HTTPS."""

    host: str = "0.0.0.0"
    port: Port = 80
    https_port: Port | None = None
    """The port in the Location (default: the edge's listen port; omitted when 443),
    e.g. 443 when a load balancer publishes the edge's 8443 there."""


class TlsCertificateConfig(Frozen):
    """One more certificate on the listener, served to clients asking for its names."""

    cert_file: str
    """PEM certificate chain: the server certificate first, then intermediates."""
    key_file: str
    """PEM private key of the certificate (unencrypted)."""
    server_names: tuple[str, ...] | None = None
    """The server names (SNI) it answers: exact (``api.example.com``) or one leading
    wildcard label (``*.example.com``), any case. Null: the certificate's own
    subjectAltName DNS names."""

    @field_validator("server_names")
    @classmethod
    def _names_can_match(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if names is None:
            return None
        if not names:
            raise ValueError("list at least one name, or leave the key out (null)")
        normalised = tuple(dict.fromkeys(normalise(name) for name in names))
        for name in normalised:
            problem = server_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return normalised


class TlsConfig(Frozen):
    """Terminate TLS on the edge's listener."""

    cert_file: str
    """PEM certificate chain of the default certificate: the server certificate first,
    then intermediates. Served when no certificate of ``certificates`` has the name the
    client asks for, or when it names none."""
    key_file: str
    """PEM private key of the default certificate (unencrypted)."""
    min_version: MinVersion = "TLS1.2"
    redirect_http: RedirectHttpConfig | None = None
    """Also listen for plain HTTP and redirect (308) to HTTPS; null: no such listener."""
    certificates: tuple[TlsCertificateConfig, ...] = ()
    """More certificates, each chosen by the client's server name (SNI)."""

    @field_validator("certificates")
    @classmethod
    def _no_name_listed_twice(
        cls, certificates: tuple[TlsCertificateConfig, ...]
    ) -> tuple[TlsCertificateConfig, ...]:
        # Names read from the files are checked when the files are loaded
        # (edge.tls_certificates); those written here can be refused with the file.
        owners: dict[str, int] = {}
        for i, certificate in enumerate(certificates):
            for name in certificate.server_names or ():
                if name in owners:
                    first = owners[name]
                    raise ValueError(
                        f"{name} is listed by both certificates[{first}] "
                        f"({certificates[first].cert_file}) and certificates[{i}] "
                        f"({certificate.cert_file})"
                    )
                owners[name] = i
        return certificates


def server_ssl_context(cert_file: str, key_file: str, min_version: MinVersion) -> ssl.SSLContext:
    """A server context with one certificate and key loaded and TLS below ``min_version``
    refused: every certificate the listener serves gets one built here, so that all
    have the same settings (OpenSSL keeps some from the context a handshake started on).

    Uses Python's secure defaults (no compression, modern AEAD ciphers for
    TLS 1.2, server cipher preference). Offers ``http/1.1`` by ALPN. Raises
    ConfigError naming the file when the certificate or key cannot be loaded.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = _MIN_VERSION[min_version]
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise ConfigError(exc.filename or cert_file, "TLS file not found") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(cert_file, f"cannot load the TLS certificate and key: {exc}") from None
    return context
