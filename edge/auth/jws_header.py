"""Strict parsing of a compact JWS before any key is looked up or any signature checked.

The header is attacker-controlled input that decides which key and which
algorithm will be used, so it is parsed here by our own rules rather than by a
library's lenient ones: exact base64url (no padding, no stray characters, no
non-canonical trailing bits), a JSON object without duplicate members, an
``alg`` from the allow-list and a ``kid`` of a strict shape. Header parameters
that point at keys (``jku``, ``x5u``, ``jwk``, ``x5c``) are never used to find a
key; by default a token that carries one is refused outright.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from edge.auth.errors import AuthError
from mesh.config.safe_regex import SafeRegex

DEFAULT_KID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""A kid is a short opaque label; anything else (paths, URLs, SQL, 10 KB blobs) is refused."""

KEY_LOCATING_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
"""Header parameters that would let the token choose its own key (RFC 8725 §3.10)."""

_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL_INDEX = {ch: i for i, ch in enumerate(_B64URL_ALPHABET)}
_B64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]+\Z")


@dataclass(frozen=True, slots=True)
class JwsHeader:
    """A header that passed every structural rule. ``params`` is read-only."""

    alg: str
    kid: str
    params: Mapping[str, Any]


def _malformed() -> AuthError:
    return AuthError.invalid_token("malformed token")


def _is_canonical_b64url(segment: str) -> bool:
    """True if ``segment`` is unpadded base64url whose unused trailing bits are zero.

    Rejecting non-canonical encodings means one token has exactly one spelling,
    which keeps the claims cache (keyed by the token text) from being trivially
    multiplied and refuses sloppy encoders instead of guessing.
    """
    if not _B64URL_SEGMENT.match(segment):
        return False
    remainder = len(segment) % 4
    if remainder == 1:
        return False
    if remainder == 0:
        return True
    last = _B64URL_INDEX[segment[-1]]
    # 2 leftover chars carry 8 bits (4 unused), 3 carry 16 bits (2 unused).
    unused_mask = 0b1111 if remainder == 2 else 0b11
    return last & unused_mask == 0


def b64url_decode(segment: str) -> bytes:
    """Decode a segment already checked by :func:`_is_canonical_b64url`."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:  # unreachable after the check; kept as a guard
        raise _malformed() from exc


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two "alg" members would let two parsers disagree about the algorithm.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate member")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-JSON constant {name}")


def parse_jws_header(
    token: str,
    *,
    allowed_algorithms: Collection[str],
    kid_pattern: SafeRegex,
    refuse_key_locating_headers: bool = True,
) -> JwsHeader:
    """Check the compact serialization of ``token`` and return its header.

    The caller must already have bounded ``len(token)``: this function decodes.
    All three segments are checked for exact base64url (the signature may be
    empty), but only the header is decoded; the payload is left to signature
    verification.

    Raises AuthError(invalid_token) with one of these descriptions:
    ``malformed token`` (not three canonical base64url segments, header not a
    UTF-8 JSON object, duplicate members, ``alg`` not a string),
    ``key-locating header not allowed`` (jku/x5u/jwk/x5c present and
    ``refuse_key_locating_headers``), ``unsupported critical header`` (``crit``),
    ``unsupported header parameter`` (``b64``), ``missing alg``,
    ``alg not allowed`` (``none`` in any spelling, or not in
    ``allowed_algorithms``), ``missing kid``, ``invalid kid``.
    """
    if not token.isascii():
        raise _malformed()
    segments = token.split(".")
    if len(segments) != 3:  # 5 would be a JWE; we never decrypt at the edge
        raise _malformed()
    header_segment, payload_segment, signature_segment = segments
    # An empty signature is well-formed (it is what "alg": "none" tokens carry);
    # it is refused below by the alg rules, or fails verification.
    if not (
        _is_canonical_b64url(header_segment)
        and _is_canonical_b64url(payload_segment)
        and (not signature_segment or _is_canonical_b64url(signature_segment))
    ):
        raise _malformed()

    try:
        header = json.loads(
            b64url_decode(header_segment).decode("utf-8"),
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _malformed() from exc
    if not isinstance(header, dict):
        raise _malformed()

    if refuse_key_locating_headers and not KEY_LOCATING_HEADERS.isdisjoint(header):
        raise AuthError.invalid_token("key-locating header not allowed")
    if "crit" in header:
        # We implement no extension, so any critical one must be refused (RFC 7515 §4.1.11).
        raise AuthError.invalid_token("unsupported critical header")
    if "b64" in header:
        # RFC 7797 unencoded payloads change what is signed; some libraries honour
        # b64=false even without crit, so its mere presence is refused.
        raise AuthError.invalid_token("unsupported header parameter")

    alg = header.get("alg")
    if alg is None:
        raise AuthError.invalid_token("missing alg")
    if not isinstance(alg, str):
        raise _malformed()
    # "none" is refused by name as well as by the allow-list, so a misconfigured
    # allow-list can never re-enable unsigned tokens in any capitalisation.
    if alg.strip().lower() == "none" or alg not in allowed_algorithms:
        raise AuthError.invalid_token("alg not allowed")

    kid = header.get("kid")
    if kid is None:
        raise AuthError.invalid_token("missing kid")
    if not isinstance(kid, str) or not kid_pattern.fullmatch(kid):
        raise AuthError.invalid_token("invalid kid")

    return JwsHeader(alg=alg, kid=kid, params=MappingProxyType(header))
