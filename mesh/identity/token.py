"""The internal identity token (``X-Mesh-Identity``): signed by the edge, checked by sidecars.

A compact JWS whose header is fixed by the key (``{"alg", "kid", "typ":
"mesh-id+jwt"}``): the verifier looks the key up by the *whole header segment*,
so it never parses attacker-chosen header JSON, and ``alg`` can never disagree
with the key. The explicit ``typ`` keeps an access token from ever passing as
an identity token (RFC 8725 §3.11). Payload::

    {"iss": "meshgate-edge", "sub": "alice", "roles": ["user"], "rid": "<X-Request-Id>",
     "amr": "jwt", "hdr": {"X-User-Id": "alice", ...}, "iat": 1700000000, "exp": 1700000030}

``hdr`` is exactly the identity headers the edge set, so a sidecar can make
the headers its app sees match the signature without knowing the edge's
claim-to-header map. ``rid`` binds the token to one request id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.identity.headers import is_header_name
from mesh.identity.keys import (
    IdentityAlgorithm,
    PublicKey,
    SigningKey,
    algorithm_of,
    b64url,
    b64url_decode,
    key_id,
    public_jwk,
    sign,
    verify,
)

TOKEN_TYPE = "mesh-id+jwt"
DEFAULT_ISSUER = "meshgate-edge"
MAX_TOKEN_BYTES = 8 * 1024
_MAX_HEADERS = 32
_MAX_FRAGMENTS = 4096

UNKNOWN_KEY = "unknown key"
"""The :class:`IdentityTokenError` reason that may be cured by fetching the edge's keys again."""


def header_segment(algorithm: IdentityAlgorithm, kid: str) -> str:
    """The one JWS header segment a key ever signs with (the verifier's lookup key)."""
    header = {"alg": algorithm, "kid": kid, "typ": TOKEN_TYPE}
    return b64url(json.dumps(header, separators=(",", ":")).encode())


@dataclass(frozen=True, slots=True)
class IdentityAssertion:
    """What a valid identity token says: who, with which roles, for which request."""

    subject: str
    roles: tuple[str, ...]
    request_id: str
    method: str
    headers: tuple[tuple[str, str], ...]
    """The identity headers exactly as the edge set them."""
    issuer: str
    issued_at: int
    expires_at: int


class IdentitySigner:
    """Signs identity tokens with one key; the algorithm follows from the key type.

    ``lifetime_s`` is how long a token stays valid after it is signed.
    ``clock`` returns Unix time in seconds.
    """

    def __init__(
        self,
        key: SigningKey,
        *,
        issuer: str = DEFAULT_ISSUER,
        lifetime_s: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime_s < 1:
            raise ValueError("lifetime_s must be at least 1")
        self._key = key
        self._issuer = issuer
        self._lifetime = lifetime_s
        self._clock = clock
        public = key.public_key()
        self.algorithm: IdentityAlgorithm = algorithm_of(public)
        self.kid = key_id(public)
        self.public_key: PublicKey = public
        self._prefix = header_segment(self.algorithm, self.kid) + "."
        self._fragments: dict[
            tuple[str, tuple[str, ...], str, tuple[tuple[str, str], ...]], str
        ] = {}

    def sign(
        self,
        *,
        subject: str,
        roles: Sequence[str],
        request_id: str,
        method: str,
        headers: Sequence[tuple[str, str]],
    ) -> str:
        """A compact token asserting this identity for ``request_id``."""
        now = int(self._clock())
        # The identity part of the payload is the same for every request of a
        # caller: serialise it once, and only the request id and times per request.
        key = (subject, tuple(roles), method, tuple(headers))
        fragment = self._fragments.get(key)
        if fragment is None:
            identity = {
                "iss": self._issuer,
                "sub": subject,
                "roles": list(roles),
                "amr": method,
                "hdr": dict(headers),
            }
            fragment = json.dumps(identity, separators=(",", ":"))[:-1]
            if len(self._fragments) >= _MAX_FRAGMENTS:
                self._fragments.clear()
            self._fragments[key] = fragment
        payload = (
            f'{fragment},"rid":{json.dumps(request_id)},"iat":{now},"exp":{now + self._lifetime}}}'
        )
        signing_input = self._prefix + b64url(payload.encode())
        return signing_input + "." + b64url(sign(self._key, signing_input.encode("ascii")))

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWKS sidecars can fetch to check these tokens."""
        return {"keys": [public_jwk(self.public_key)]}


def verification_keys(public_keys: Iterable[PublicKey]) -> dict[str, PublicKey]:
    """Public keys indexed as :func:`verify_identity_token` looks them up."""
    return {header_segment(algorithm_of(k), key_id(k)): k for k in public_keys}


class IdentityTokenError(Exception):
    """An identity token that must not be believed; ``reason`` is a short fixed phrase.

    Reasons never contain any part of the token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_identity_token(
    token: str,
    keys: Mapping[str, PublicKey],
    *,
    issuer: str,
    now: float,
    leeway_s: float,
    max_bytes: int = MAX_TOKEN_BYTES,
) -> IdentityAssertion:
    """Check ``token`` against ``keys`` (from :func:`verification_keys`) at ``now``.

    Raises IdentityTokenError: ``token too large``, ``malformed token``,
    ``unknown key`` (:data:`UNKNOWN_KEY`), ``signature invalid``, ``invalid
    claims``, ``issuer mismatch``, ``token expired`` (``now >= exp + leeway``),
    ``token issued in the future`` (``iat > now + leeway``).
    """
    if len(token) > max_bytes:
        raise IdentityTokenError("token too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise IdentityTokenError("malformed token")
    head, body, signature = parts
    key = keys.get(head)
    if key is None:
        raise IdentityTokenError(UNKNOWN_KEY)
    try:
        raw_signature = b64url_decode(signature)
        raw_payload = b64url_decode(body)
    except ValueError as exc:
        raise IdentityTokenError("malformed token") from exc
    if not verify(key, raw_signature, f"{head}.{body}".encode("ascii")):
        raise IdentityTokenError("signature invalid")
    try:
        payload = json.loads(raw_payload)
    except (ValueError, RecursionError) as exc:
        raise IdentityTokenError("malformed token") from exc
    assertion = _assertion(payload)
    if assertion.issuer != issuer:
        raise IdentityTokenError("issuer mismatch")
    if now >= assertion.expires_at + leeway_s:
        raise IdentityTokenError("token expired")
    if assertion.issued_at > now + leeway_s:
        raise IdentityTokenError("token issued in the future")
    return assertion


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise IdentityTokenError("invalid claims")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise IdentityTokenError("invalid claims")
    return value


def _assertion(payload: Any) -> IdentityAssertion:
    if not isinstance(payload, dict):
        raise IdentityTokenError("invalid claims")
    roles = payload.get("roles")
    hdr = payload.get("hdr")
    if not isinstance(roles, list) or not isinstance(hdr, dict) or len(hdr) > _MAX_HEADERS:
        raise IdentityTokenError("invalid claims")
    headers = tuple((_text(name), _text(value)) for name, value in hdr.items())
    if not all(is_header_name(name) for name, _ in headers):
        raise IdentityTokenError("invalid claims")
    return IdentityAssertion(
        subject=_text(payload.get("sub")),
        roles=tuple(_text(r) for r in roles),
        request_id=_text(payload.get("rid")),
        method=_text(payload.get("amr")),
        headers=headers,
        issuer=_text(payload.get("iss")),
        issued_at=_integer(payload.get("iat")),
        expires_at=_integer(payload.get("exp")),
    )
