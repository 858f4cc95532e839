"""The edge's identity key: files, JWKs, thumbprints and JWS signatures."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mesh.identity.keys import (
    IDENTITY_ALGORITHMS,
    IdentityKeyError,
    algorithm_of,
    b64url_decode,
    generate_signing_key,
    key_id,
    load_public_key,
    load_signing_key,
    public_jwk,
    public_key_from_jwk,
    public_key_pem,
    sign,
    signing_key_pem,
    verify,
)


@pytest.mark.parametrize("algorithm", IDENTITY_ALGORITHMS)
def test_pem_round_trip_keeps_key_and_kid(algorithm: str) -> None:
    key = generate_signing_key(algorithm)  # type: ignore[arg-type]
    loaded = load_signing_key(signing_key_pem(key))
    public = load_public_key(public_key_pem(loaded.public_key()))
    assert algorithm_of(loaded) == algorithm == algorithm_of(public)
    assert key_id(public) == key_id(key.public_key())


@pytest.mark.parametrize("algorithm", IDENTITY_ALGORITHMS)
def test_jwk_round_trip_and_signatures(algorithm: str) -> None:
    key = generate_signing_key(algorithm)  # type: ignore[arg-type]
    jwk = public_jwk(key.public_key())
    assert jwk["alg"] == algorithm and jwk["use"] == "sig"
    assert jwk["kid"] == key_id(key.public_key())
    assert len(jwk["kid"]) == 43
    public = public_key_from_jwk(jwk)
    signature = sign(key, b"payload")
    assert verify(public, signature, b"payload")
    assert not verify(public, signature, b"payload!")
    assert not verify(public, signature[:-1] + bytes([signature[-1] ^ 1]), b"payload")
    if algorithm == "ES256":
        assert len(signature) == 64  # raw r||s, not DER (RFC 7518 §3.4)


def test_kid_is_the_rfc_7638_thumbprint_of_the_required_members() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = public_jwk(key.public_key())
    import base64
    import hashlib
    import json

    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert jwk["kid"] == expected.rstrip(b"=").decode()


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["rsa", "p-384"],
)
def test_other_key_types_are_refused(make: object) -> None:
    key = make()  # type: ignore[operator]
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(IdentityKeyError):
        load_signing_key(pem)
    with pytest.raises(IdentityKeyError):
        load_public_key(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def test_garbage_and_encrypted_pem_are_refused() -> None:
    with pytest.raises(IdentityKeyError):
        load_signing_key(b"not a key")
    key = ed25519.Ed25519PrivateKey.generate()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(IdentityKeyError):
        load_signing_key(encrypted)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "RSA", "n": "AA", "e": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AA", "alg": "ES256"},
        {"kty": "EC", "crv": "P-256", "x": "!!", "y": "AA"},
        {"kty": "OKP", "crv": "Ed25519"},
    ],
)
def test_unusable_jwks_are_refused(jwk: dict[str, str]) -> None:
    with pytest.raises(IdentityKeyError):
        public_key_from_jwk(jwk)


@pytest.mark.parametrize("text", ["a+b", "a/b", "ab=", "a b", "a"])
def test_b64url_decode_is_strict(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)
