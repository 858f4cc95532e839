"""The ``iss`` claim of a compact JWS, read without verifying anything (pure).

Used only to pick which provider verifies the token: the value is the
client's, so it selects a verifier and is never trusted. The chosen verifier
then checks the signature with that provider's keys and requires ``iss`` to
equal that provider's issuer, over the very payload read here, so a token
claiming another provider's issuer is refused by that provider's keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from edge.auth.errors import AuthError

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+\Z")


def unverified_issuer(token: str) -> str:
    """The ``iss`` string of ``token``'s payload, unverified.

    Raises AuthError ``malformed token`` unless ``token`` is three base64url
    segments whose middle one is a JSON object, and ``missing iss`` when that
    object has no ``iss`` string. Callers bound the token size first: this
    decodes the whole payload.
    """
    parts = token.split(".")
    if len(parts) != 3 or not _SEGMENT.match(parts[1]):
        raise AuthError.invalid_token("malformed token")
    segment = parts[1]
    try:
        payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise AuthError.invalid_token("malformed token") from exc
    if not isinstance(payload, dict):
        raise AuthError.invalid_token("malformed token")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise AuthError.invalid_token("missing iss")
    return issuer
