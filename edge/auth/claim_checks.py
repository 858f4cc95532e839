"""The registered-claim rules of RFC 7519 §4.1 as applied at the edge, at an injected time.

Pure functions of (payload, expectations, now): no clock is read here, which is
why time claims are checked here rather than by PyJWT (it reads the wall clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.auth.claims import audience_of, numeric_date
from edge.auth.errors import AuthError

MAX_LEEWAY_S = 60.0
"""Clock-skew allowance is for skew, not for extending token lifetimes."""


def check_time_claims(payload: Mapping[str, Any], *, now: float, leeway_s: float) -> float:
    """Check ``exp`` (required), ``nbf`` and ``iat`` at ``now``; return ``exp``.

    - ``missing exp`` / ``invalid exp``: no usable expiry; a token without one
      would be valid forever.
    - ``token expired``: ``now >= exp + leeway`` (RFC 7519: not accepted *on or
      after* exp).
    - ``token not yet valid``: ``now + leeway < nbf``.
    - ``token issued in the future``: ``now + leeway < iat``.
    """
    exp = numeric_date(payload, "exp")
    if exp is None:
        raise AuthError.invalid_token("missing exp")
    nbf = numeric_date(payload, "nbf")
    iat = numeric_date(payload, "iat")
    if now >= exp + leeway_s:
        raise AuthError.invalid_token("token expired")
    if nbf is not None and now + leeway_s < nbf:
        raise AuthError.invalid_token("token not yet valid")
    if iat is not None and now + leeway_s < iat:
        raise AuthError.invalid_token("token issued in the future")
    return exp


def check_issuer(payload: Mapping[str, Any], expected: str) -> None:
    """``iss`` must equal ``expected`` exactly (no prefix, case or slash folding).

    Raises ``missing iss`` or ``issuer mismatch``.
    """
    iss = payload.get("iss")
    if iss is None:
        raise AuthError.invalid_token("missing iss")
    if not isinstance(iss, str) or iss != expected:
        raise AuthError.invalid_token("issuer mismatch")


def check_audience(payload: Mapping[str, Any], expected: str) -> None:
    """``aud`` (a string or an array of strings) must contain ``expected`` exactly.

    Raises ``missing aud``, ``invalid aud`` (wrong shape) or ``audience mismatch``.
    """
    if payload.get("aud") is None:
        raise AuthError.invalid_token("missing aud")
    if expected not in audience_of(payload):
        raise AuthError.invalid_token("audience mismatch")


def check_registered_claims(
    payload: Mapping[str, Any], *, issuer: str, audience: str, now: float, leeway_s: float
) -> float:
    """All edge rules for a signed JWT's claims, in a fixed order; return ``exp``.

    Order: time claims, then issuer, then audience (each raising AuthError as
    documented on the individual checks).
    """
    exp = check_time_claims(payload, now=now, leeway_s=leeway_s)
    check_issuer(payload, issuer)
    check_audience(payload, audience)
    return exp
