"""Certificate and key files from a test CA (trustme), for the tests of the edge's TLS."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class CertFiles:
    cert_file: Path
    key_file: Path
    der: bytes
    """The server certificate (DER), as a client's ``getpeercert(binary_form=True)`` has it."""

    def pair(self) -> dict[str, str]:
        """The two files as the ``tls`` config section names them."""
        return {"cert_file": str(self.cert_file), "key_file": str(self.key_file)}


def write_cert(
    ca: trustme.CA,
    directory: Path,
    stem: str,
    *names: str,
    not_after: datetime.datetime | None = None,
    common_name: str | None = None,
) -> CertFiles:
    """A certificate for ``names`` (its subjectAltName) issued by ``ca``, written as
    ``<stem>.pem`` (chain: the certificate first) and ``<stem>.key`` in ``directory``
    (over the files there, as a renewal does)."""
    cert = ca.issue_cert(*names, not_after=not_after, common_name=common_name)
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_file))
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    return CertFiles(cert_file, key_file, der)


def write_self_signed(directory: Path, stem: str, *dns_names: str) -> CertFiles:
    """A self-signed certificate whose subjectAltName has ``dns_names`` exactly as given
    (trustme refuses names such as ``a*.example.com``, which real certificates carry)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, stem)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CertFiles(cert_file, key_file, cert.public_bytes(serialization.Encoding.DER))
