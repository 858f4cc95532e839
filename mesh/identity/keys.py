"""The edge's identity signing key: generation, PEM files, JWKs, raw JWS signatures.

Two algorithms, both asymmetric so that a sidecar holding the public key can
check the edge's signature but never make one: ``ES256`` (P-256) and
``EdDSA`` (Ed25519). The algorithm always follows from the key's type, never
from a token. Key ids are RFC 7638 thumbprints, so the same key file gives the
same ``kid`` on every edge and every restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

IdentityAlgorithm = Literal["ES256", "EdDSA"]
IDENTITY_ALGORITHMS: tuple[IdentityAlgorithm, ...] = ("ES256", "EdDSA")

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_P256_BYTES = 32
_ECDSA = ec.ECDSA(hashes.SHA256())
_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")


class IdentityKeyError(ValueError):
    """A key that cannot be used for identity tokens; ``str()`` says why (no key material)."""


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ValueError on anything else."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_curve(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise IdentityKeyError("only P-256 EC keys (ES256) are supported")


def generate_signing_key(algorithm: IdentityAlgorithm) -> SigningKey:
    """A fresh private key for ``algorithm``."""
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise IdentityKeyError(f"unsupported identity algorithm {algorithm!r}")


def algorithm_of(key: SigningKey | PublicKey) -> IdentityAlgorithm:
    """``ES256`` for a P-256 key, ``EdDSA`` for an Ed25519 key."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        _check_curve(key)
        return "ES256"
    return "EdDSA"


def load_signing_key(pem: bytes) -> SigningKey:
    """A private key from unencrypted PEM (PKCS#8 or SEC1); P-256 or Ed25519 only."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise IdentityKeyError("not an unencrypted PEM private key") from exc
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _check_curve(key)
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise IdentityKeyError("only P-256 EC and Ed25519 private keys are supported")


def load_public_key(pem: bytes) -> PublicKey:
    """A public key from PEM (SubjectPublicKeyInfo); P-256 or Ed25519 only."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise IdentityKeyError("not a PEM public key") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        _check_curve(key)
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise IdentityKeyError("only P-256 EC and Ed25519 public keys are supported")


def signing_key_pem(key: SigningKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (for writing a key file)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM (what sidecars are given)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _jwk_members(key: PublicKey) -> dict[str, str]:
    """The required members of the public JWK, which are also what RFC 7638 hashes."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        _check_curve(key)
        numbers = key.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(_P256_BYTES, "big")),
            "y": b64url(numbers.y.to_bytes(_P256_BYTES, "big")),
        }
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}


def key_id(key: PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): 43 characters."""
    canonical = json.dumps(_jwk_members(key), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The public JWK with ``kid``, ``alg`` and ``use=sig``."""
    jwk = _jwk_members(key)
    jwk.update({"kid": key_id(key), "alg": algorithm_of(key), "use": "sig"})
    return jwk


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """The public key of a JWK as :func:`public_jwk` writes it.

    Raises IdentityKeyError for private members, another key type or curve, an
    ``alg`` that disagrees with the key, or material that does not decode.
    """
    if "d" in jwk:
        raise IdentityKeyError("private key material published")
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    try:
        if kty == "EC" and crv == "P-256" and alg in (None, "ES256"):
            x = int.from_bytes(b64url_decode(str(jwk["x"])), "big")
            y = int.from_bytes(b64url_decode(str(jwk["y"])), "big")
            return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        if kty == "OKP" and crv == "Ed25519" and alg in (None, "EdDSA"):
            return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk["x"])))
    except (KeyError, ValueError) as exc:
        raise IdentityKeyError("invalid key material") from exc
    raise IdentityKeyError("not an ES256 (P-256) or EdDSA (Ed25519) key")


def sign(key: SigningKey, data: bytes) -> bytes:
    """The JWS signature of ``data``: raw r||s for ES256 (RFC 7518 §3.4), raw for EdDSA."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    r, s = decode_dss_signature(key.sign(data, _ECDSA))
    return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")


def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` (JWS form, as :func:`sign` makes it) is valid for ``data``."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        if len(signature) != 2 * _P256_BYTES:
            return False
        r = int.from_bytes(signature[:_P256_BYTES], "big")
        s = int.from_bytes(signature[_P256_BYTES:], "big")
        key.verify(encode_dss_signature(r, s), data, _ECDSA)
        return True
    except InvalidSignature:
        return False
