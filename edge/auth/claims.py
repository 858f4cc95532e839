"""The verified identity a token yields, and the protocol of the things that yield it.

Both verification modes (local JWT, RFC 7662 introspection) produce the same
:class:`Claims`, so the filters after authentication (identity headers, rate-limit
keys, role checks) never need to know which mode ran.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from edge.auth.errors import AuthError


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its caller.

    Every text field is a printable string (no control characters), so it can be
    copied into a header without further checks. ``expires_at`` is a Unix time,
    None only for an introspection answer without ``exp``. ``raw`` is the whole
    verified payload, shared between cache hits: treat it as read-only.
    ``provider`` names the configured JWT provider whose keys, issuer and
    audience verified the token (None for introspection answers, and for a
    verifier not told its provider's name).
    """

    subject: str
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    expires_at: float | None = None
    issued_at: float | None = None
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    email: str | None = None
    client_id: str | None = None
    token_id: str | None = None
    provider: str | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def has_role(self, role: str) -> bool:
        """True if ``role`` is one of the token's roles."""
        return role in self.roles


class TokenVerifier(Protocol):
    """Turns a bearer token into Claims: :class:`JwtVerifier` or :class:`IntrospectionVerifier`."""

    async def verify(self, token: str) -> Claims:
        """Return the token's claims or raise AuthError (401 invalid_token)."""
        ...


def _text(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    # Printable only: these values end up in headers and logs downstream.
    if not isinstance(value, str) or not value or not value.isprintable():
        raise AuthError.invalid_token(f"invalid {name}")
    return value


def _text_list(payload: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = payload.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item and item.isprintable() for item in value
    ):
        raise AuthError.invalid_token(f"invalid {name}")
    return tuple(value)


def numeric_date(payload: Mapping[str, Any], name: str) -> float | None:
    """The NumericDate claim ``name`` (RFC 7519 §2) as a float, None if absent.

    Raises AuthError ``invalid <name>`` for booleans, strings, NaN and infinities:
    ``"exp": "9999999999"`` or ``true`` must not be coerced into a date.
    """
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError.invalid_token(f"invalid {name}")
    try:
        as_float = float(value)
    except OverflowError as exc:
        raise AuthError.invalid_token(f"invalid {name}") from exc
    if not math.isfinite(as_float):
        raise AuthError.invalid_token(f"invalid {name}")
    return as_float


def audience_of(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """``aud`` as a tuple: RFC 7519 allows one string or an array of strings."""
    value = payload.get("aud")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return _text_list(payload, "aud")


def claims_from_payload(
    payload: Mapping[str, Any],
    *,
    subject_fallback_claim: str | None = None,
    provider: str | None = None,
) -> Claims:
    """Build Claims from a verified payload (JWT claims or an introspection answer).

    ``sub`` is required; ``subject_fallback_claim`` names a claim used when it
    is absent (introspection uses ``client_id`` for machine clients). ``scope``
    is the RFC 8693 space-separated string, ``roles`` an array of strings.
    Raises AuthError ``missing sub`` or ``invalid <claim>`` for a claim of the
    wrong shape. ``provider`` is copied into :attr:`Claims.provider` as it is.
    """
    subject = _text(payload, "sub")
    if subject is None and subject_fallback_claim is not None:
        subject = _text(payload, subject_fallback_claim)
    if subject is None:
        raise AuthError.invalid_token("missing sub")
    scope = _text(payload, "scope")
    return Claims(
        subject=subject,
        issuer=_text(payload, "iss"),
        audience=audience_of(payload),
        expires_at=numeric_date(payload, "exp"),
        issued_at=numeric_date(payload, "iat"),
        roles=_text_list(payload, "roles"),
        scopes=tuple(scope.split()) if scope else (),
        email=_text(payload, "email"),
        client_id=_text(payload, "client_id"),
        token_id=_text(payload, "jti"),
        provider=provider,
        raw=MappingProxyType(dict(payload)),
    )
