"""A small Connect CA for tests: roots and leaf certificates in Consul's JSON shapes.

Certificates are made with ``cryptography`` as Consul's built-in CA makes them
(EC P-256, the service's SPIFFE URI as the only subject-alternative name), so
:class:`mesh.mtls.material.Leaf` and ``Roots`` read them exactly as they read
Consul's answers.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOMAIN = "11111111-2222-3333-4444-555555555555.consul"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class ConnectCa:
    """One root; :meth:`leaf` issues for a service (or for a given URI)."""

    trust_domain: str = DOMAIN
    name: str = "Test Connect CA"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    serial: int = 1

    def __post_init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.root = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def roots(self, *others: ConnectCa) -> dict[str, Any]:
        """``/v1/agent/connect/ca/roots``, this CA active (and ``others`` also trusted)."""
        return {
            "ActiveRootID": f"root-{self.name}",
            "TrustDomain": self.trust_domain,
            "Roots": [
                {
                    "ID": f"root-{ca.name}",
                    "Name": ca.name,
                    "RootCert": _pem(ca.root),
                    "Active": ca is self,
                }
                for ca in (self, *others)
            ],
        }

    def leaf(self, service: str, *, uris: tuple[str, ...] | None = None) -> dict[str, Any]:
        """``/v1/agent/connect/ca/leaf/<service>``."""
        uri = f"spiffe://{self.trust_domain}/ns/default/dc/dc1/svc/{service}"
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        valid_before = now + datetime.timedelta(days=3)
        self.serial += 1
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
            .issuer_name(self.root.subject)
            .public_key(key.public_key())
            .serial_number(self.serial)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(valid_before)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier(u)
                        for u in (uris if uris is not None else (uri,))
                    ]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        return {
            "SerialNumber": f"{self.serial:02x}",
            "CertPEM": _pem(cert),
            "PrivateKeyPEM": key_pem,
            "Service": service,
            "ServiceURI": uri,
            "ValidAfter": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ValidBefore": valid_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
