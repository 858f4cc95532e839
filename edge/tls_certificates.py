"""The certificates one TLS listener serves: every file of the ``tls`` section loaded
into its own SSLContext, with the names each answers and when each expires.

A certificate's own names and expiry are read with ``cryptography`` (already
a dependency, for JWTs): its ``x509`` API is public and documented, whereas
the standard library gives a leaf's subjectAltName only for a peer's
certificate after a handshake (``getpeercert``), or through the private,
undocumented ``ssl._ssl._test_decode_cert``; ``SSLContext.get_ca_certs``
lists trusted CAs, never the context's own certificate.

Names come from the subjectAltName DNS entries only, never from the subject's
common name: clients have ignored the CN when a SAN is present for years
(RFC 6125 section 6.4.4; browsers ignore it altogether).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography import x509

from edge.tls import MinVersion, TlsConfig, server_ssl_context
from edge.tls_names import Claim, NameConflict, NameTable, normalise, server_name_problem
from mesh.config.errors import ConfigError


@dataclass(frozen=True)
class ServedCertificate:
    """One certificate and key, loaded, with what an operator wants to see of it."""

    cert_file: str
    key_file: str
    context: ssl.SSLContext
    names: tuple[str, ...]
    """The names it is chosen for (normalised). For the default certificate, its own
    matchable subjectAltName names (it is also served when nothing matches)."""
    names_from: Literal["server_names", "subjectAltName"]
    not_after: datetime
    """The end of its validity (notAfter), in UTC."""
    serial: str
    """Its serial number in hex, to tell a renewed certificate from the one before."""

    def view(self) -> dict[str, Any]:
        return {
            "cert_file": self.cert_file,
            "key_file": self.key_file,
            "names": list(self.names),
            "names_from": self.names_from,
            "not_after": self.not_after.isoformat(),
            "serial": self.serial,
        }


@dataclass(frozen=True)
class ServedCertificates:
    """The whole set a listener serves, built at once (:func:`load_certificates`) so that
    a reload swaps every certificate together."""

    default: ServedCertificate
    listed: tuple[ServedCertificate, ...]
    """Those of ``tls.certificates``, in the file's order."""
    table: NameTable[ssl.SSLContext]

    def select(self, server_name: str | None) -> ssl.SSLContext:
        """The context for a ClientHello naming ``server_name`` (None: no SNI); the
        default certificate's when no other has the name."""
        return self.table.select(server_name)

    def all(self) -> tuple[ServedCertificate, ...]:
        return (self.default, *self.listed)

    def view(self) -> Mapping[str, Any]:
        return {
            "default": self.default.view(),
            "certificates": [certificate.view() for certificate in self.listed],
        }


def load_certificates(config: TlsConfig) -> ServedCertificates:
    """Read every certificate and key of ``config`` into its own context, all built by
    :func:`edge.tls.server_ssl_context` with ``config.min_version``.

    Raises ConfigError naming the file when one cannot be loaded, when a certificate of
    ``certificates`` without ``server_names`` has no DNS name in its subjectAltName,
    or when two of them are chosen for the same name (naming both files). The default
    certificate's own names take part in the matching (so an exact name of it beats
    another certificate's wildcard) but yield to a name another certificate has.
    """
    default = _load(
        config.cert_file, config.key_file, config.min_version, server_names=None, default=True
    )
    listed = tuple(
        _load(c.cert_file, c.key_file, config.min_version, c.server_names, default=False)
        for c in config.certificates
    )
    try:
        table = NameTable(
            default.context,
            [Claim(c.cert_file, c.names, c.context) for c in listed],
            [Claim(default.cert_file, default.names, default.context)],
        )
    except NameConflict as exc:
        raise ConfigError(
            exc.second,
            f"the certificate is chosen for {exc.name}, as {exc.first} is: "
            "give one of them server_names without it",
        ) from None
    return ServedCertificates(default, listed, table)


def _load(
    cert_file: str,
    key_file: str,
    min_version: MinVersion,
    server_names: tuple[str, ...] | None,
    *,
    default: bool,
) -> ServedCertificate:
    context = server_ssl_context(cert_file, key_file, min_version)
    # OpenSSL accepted the pair: the file holds PEM, the server's certificate first.
    certificate = _leaf(cert_file)
    names_from: Literal["server_names", "subjectAltName"] = "server_names"
    names = server_names
    if names is None:
        names_from = "subjectAltName"
        names = _san_names(cert_file, certificate, strict=not default)
    return ServedCertificate(
        cert_file=cert_file,
        key_file=key_file,
        context=context,
        names=names,
        names_from=names_from,
        not_after=certificate.not_valid_after_utc,
        serial=format(certificate.serial_number, "x"),
    )


def _leaf(cert_file: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(Path(cert_file).read_bytes())[0]
    except (OSError, ValueError) as exc:
        raise ConfigError(cert_file, f"cannot read the TLS certificate: {exc}") from None


def _san_names(cert_file: str, certificate: x509.Certificate, *, strict: bool) -> tuple[str, ...]:
    """The certificate's subjectAltName DNS names that can be matched, normalised.

    ``strict`` (a certificate that is served only for its names): a name that cannot be
    matched, or none at all, is a ConfigError naming the file. Otherwise (the default
    certificate, served whatever the name) such names are left out.
    """
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        found = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        found = []
    names: list[str] = []
    for raw in found:
        name = normalise(raw)
        problem = server_name_problem(name)
        if problem is None:
            names.append(name)
        elif strict:
            raise ConfigError(
                cert_file, f"subjectAltName {problem}: give the names in server_names"
            )
    if strict and not names:
        raise ConfigError(
            cert_file, "the certificate has no DNS name in its subjectAltName: give server_names"
        )
    return tuple(dict.fromkeys(names))
