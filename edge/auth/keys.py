"""Verification keys: what a JWK may verify, and the protocol verifiers get keys through.

A key's algorithms are derived from the key itself (``kty``, ``crv``, optional
``alg``), never from the token. An RSA key can only ever verify RS*/PS*, a P-256
key only ES256, an Ed25519 key only EdDSA; symmetric (``oct``) keys are never
accepted from a key set. That is what makes "HS256 signed with the public key"
impossible whatever the token header says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHM_BY_CURVE: Mapping[str, str] = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
OKP_CURVES = frozenset({"Ed25519", "Ed448"})
SUPPORTED_ALGORITHMS = RSA_ALGORITHMS | frozenset(EC_ALGORITHM_BY_CURVE.values()) | {"EdDSA"}
"""Every algorithm a verification key can be used with: asymmetric signatures only."""

MIN_RSA_BITS = 2048

# Members that only a private JWK has (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
# (A symmetric "k" never gets this far: oct keys are refused by type first.)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


class UnusableKey(ValueError):
    """A JWK that cannot be used for verification; ``str()`` says why, without key material."""


class KeysUnavailable(Exception):
    """No key set could be obtained at all (never fetched, or too stale to trust).

    Distinct from an unknown kid: the token may be fine, the edge just cannot
    check it now. An HTTP filter should answer 503, not 401.
    """


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key with the algorithms it may verify, one prepared PyJWK per algorithm."""

    kid: str
    kty: str
    by_algorithm: Mapping[str, jwt.PyJWK] = field(repr=False)

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms this key accepts (never empty)."""
        return frozenset(self.by_algorithm)

    def for_algorithm(self, alg: str) -> jwt.PyJWK | None:
        """The PyJWK bound to ``alg``, or None if this key must not verify ``alg``."""
        return self.by_algorithm.get(alg)


class KeySource(Protocol):
    """Where a verifier gets keys. Implemented by :class:`edge.auth.jwks.JwksCache`."""

    async def get_key(self, kid: str) -> VerificationKey | None:
        """The key with this kid, or None if the source does not know it.

        May fetch (subject to the source's own rate limits). Raises
        KeysUnavailable when the source has no usable key set at all.
        """
        ...


def _algorithms_for(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The algorithms the key type allows, narrowed to ``alg`` when the JWK names one."""
    kty = jwk.get("kty")
    if kty == "RSA":
        candidates = RSA_ALGORITHMS
    elif kty == "EC":
        crv = jwk.get("crv")
        if not isinstance(crv, str) or crv not in EC_ALGORITHM_BY_CURVE:
            raise UnusableKey("unsupported EC curve")
        candidates = frozenset({EC_ALGORITHM_BY_CURVE[crv]})
    elif kty == "OKP":
        if jwk.get("crv") not in OKP_CURVES:
            raise UnusableKey("unsupported OKP curve")
        candidates = frozenset({"EdDSA"})
    elif kty == "oct":
        raise UnusableKey("symmetric key refused")
    else:
        raise UnusableKey("unsupported kty")

    alg = jwk.get("alg")
    if alg is None:
        return candidates
    if not isinstance(alg, str) or alg not in candidates:
        # e.g. an RSA key labelled HS256, or a P-256 key labelled ES384.
        raise UnusableKey("alg does not match key type")
    return frozenset({alg})


def verification_key_from_jwk(jwk: Mapping[str, Any], *, kid: str) -> VerificationKey:
    """Build a VerificationKey from one member of a JWKS.

    Refuses (UnusableKey) symmetric keys, unknown key types and curves, an
    ``alg`` that disagrees with the key type, ``use`` other than ``sig``,
    ``key_ops`` without ``verify``, any private key member (a published private
    key is a compromised key), RSA keys under 2048 bits and key material that
    does not parse.
    """
    if jwk.get("kty") == "oct":
        raise UnusableKey("symmetric key refused")
    if not _PRIVATE_MEMBERS.isdisjoint(jwk):
        raise UnusableKey("private key material published")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise UnusableKey("key use is not sig")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise UnusableKey("key_ops does not allow verify")

    algorithms = _algorithms_for(jwk)
    by_algorithm: dict[str, jwt.PyJWK] = {}
    for alg in sorted(algorithms):
        try:
            prepared = jwt.PyJWK(dict(jwk), algorithm=alg)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise UnusableKey("invalid key material") from exc
        if isinstance(prepared.key, RSAPublicKey) and prepared.key.key_size < MIN_RSA_BITS:
            raise UnusableKey("RSA key too small")
        by_algorithm[alg] = prepared
    return VerificationKey(kid=kid, kty=str(jwk["kty"]), by_algorithm=by_algorithm)
