"""A service's Connect certificate, its key and the CA roots → the SSL contexts that use them.

Consul hands them out as PEM text (``/v1/agent/connect/ca/leaf/<service>`` and
``/v1/agent/connect/ca/roots``). Python's ``ssl`` loads a certificate chain
only from files, so the pair is written to a private temporary directory,
loaded and removed at once; the roots load from memory.

Both contexts verify the peer against the roots (TLS 1.2 or newer) and
present this service's certificate. Neither checks a host name: Connect
certificates name a service by URI, not a host, and that name is checked
after the handshake (:mod:`mesh.mtls.contexts`).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class MaterialError(ValueError):
    """Consul's answer cannot be used: a field is missing, or OpenSSL refuses it."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """``/v1/agent/connect/ca/leaf/<service>``: this service's certificate and key."""

    service: str
    uri: str
    cert_pem: str
    key_pem: str
    serial: str
    valid_before: float
    """Expiry, seconds since the epoch."""

    @classmethod
    def from_consul(cls, raw: Mapping[str, Any]) -> Leaf:
        try:
            return cls(
                service=str(raw["Service"]),
                uri=str(raw["ServiceURI"]),
                cert_pem=str(raw["CertPEM"]),
                key_pem=str(raw["PrivateKeyPEM"]),
                serial=str(raw.get("SerialNumber", "")),
                valid_before=_timestamp(str(raw["ValidBefore"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MaterialError(f"unusable leaf certificate answer: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class Roots:
    """``/v1/agent/connect/ca/roots``: the trust domain and every root to trust."""

    trust_domain: str
    active_id: str
    pems: tuple[str, ...]

    @classmethod
    def from_consul(cls, raw: Mapping[str, Any]) -> Roots:
        roots: Sequence[Mapping[str, Any]] = raw.get("Roots") or ()
        pems = tuple(str(r["RootCert"]) for r in roots if r.get("RootCert"))
        domain = raw.get("TrustDomain")
        if not domain or not pems:
            raise MaterialError("Consul's Connect CA has no trust domain or no root yet")
        return cls(str(domain), str(raw.get("ActiveRootID", "")), pems)


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _context(purpose: ssl.Purpose, leaf: Leaf, roots: Roots) -> ssl.SSLContext:
    context = ssl.SSLContext(
        ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_verify_locations(cadata="\n".join(roots.pems))
        with tempfile.TemporaryDirectory(prefix="meshgate-tls-") as private:
            # TemporaryDirectory is 0700: the key is never readable by anyone else,
            # and is gone as soon as OpenSSL has read it.
            cert_file = os.path.join(private, "cert.pem")
            key_file = os.path.join(private, "key.pem")
            with open(cert_file, "w") as out:
                out.write(leaf.cert_pem)
            with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
                out.write(leaf.key_pem)
            context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        raise MaterialError(
            f"cannot load {leaf.service}'s certificate or the roots: {exc}"
        ) from None
    return context


def server_context(leaf: Leaf, roots: Roots) -> ssl.SSLContext:
    """For a listener that accepts only clients with a certificate from the roots."""
    return _context(ssl.Purpose.CLIENT_AUTH, leaf, roots)


def client_context(leaf: Leaf, roots: Roots) -> ssl.SSLContext:
    """For connections to servers with a certificate from the roots, presenting ``leaf``."""
    return _context(ssl.Purpose.SERVER_AUTH, leaf, roots)
