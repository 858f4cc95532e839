"""Who the caller is once authenticated, and the identity headers that say so.

Every method (local JWT, introspection, API key) ends in one :class:`Identity`,
so what comes after authentication (role checks, identity headers, the
internal token, rate-limit keys) never needs to know which method ran. The
authenticate filter leaves it in ``ex.attrs["identity"]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

from edge.auth.apikeys import ApiKeyRecord
from edge.auth.claims import Claims

IdentityMethod = Literal["jwt", "introspect", "apikey"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_MAX_VALUE_CHARS = 1024
# Printable ASCII is kept as is; anything else is percent-encoded (RFC 3986 style).
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller.

    ``subject`` is the token's ``sub`` or the API key's consumer; ``consumer``
    is the API key's consumer or a machine client's ``client_id``; ``plan`` and
    ``key_id`` are set for API keys only; ``provider`` names the JWT provider
    that verified the token (None for API keys and introspected tokens);
    ``claims`` is the verified token payload (empty for API keys), read-only.
    """

    method: IdentityMethod
    subject: str
    roles: tuple[str, ...] = ()
    email: str | None = None
    consumer: str | None = None
    client_id: str | None = None
    plan: str | None = None
    key_id: str | None = None
    provider: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, repr=False)

    def has_any_role(self, roles: Iterable[str]) -> bool:
        """True if the caller has at least one of ``roles``."""
        return any(role in self.roles for role in roles)


def identity_from_claims(claims: Claims, method: IdentityMethod) -> Identity:
    """The identity a verified token (local or introspected) establishes."""
    return Identity(
        method=method,
        subject=claims.subject,
        roles=claims.roles,
        email=claims.email,
        consumer=claims.client_id,
        client_id=claims.client_id,
        provider=claims.provider,
        claims=claims.raw,
    )


def identity_from_api_key(record: ApiKeyRecord) -> Identity:
    """The identity an API key establishes: its consumer is the subject."""
    return Identity(
        method="apikey",
        subject=record.consumer,
        roles=record.roles,
        consumer=record.consumer,
        plan=record.plan,
        key_id=record.key_id,
    )


_FIELDS = {
    "sub": "subject",
    "roles": "roles",
    "email": "email",
    "consumer": "consumer",
    "method": "method",
    "plan": "plan",
    "client_id": "client_id",
    "provider": "provider",
}
"""Claim-map sources that name an Identity field; any other source is a raw claim."""


def _attribute(identity: Identity, source: str) -> object:
    name = _FIELDS.get(source)
    return getattr(identity, name) if name is not None else identity.claims.get(source)


def header_value(value: object) -> str | None:
    """``value`` as a header value, or None when it cannot (or should not) be one.

    Strings and numbers as text, booleans as ``true``/``false``, lists of those
    comma-separated; objects, empty values, control characters and values
    over 1024 characters give None. Non-ASCII text is percent-encoded, so a
    header value is always printable ASCII.
    """
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, list | tuple):
        items = [header_value(v) for v in value]
        if any(i is None or "," in i for i in items):
            return None
        text = ",".join(i for i in items if i is not None)
    else:
        return None
    if not text or len(text) > _MAX_VALUE_CHARS or not text.isprintable():
        return None
    return text if text.isascii() else quote(text, safe=_SAFE)


class IdentityHeaders:
    """The claim-to-header map: renders an identity as (header, value) pairs.

    Sources are :data:`edge.auth.config.IDENTITY_SOURCES` or any claim name;
    a source with no usable value gives no header (never an empty one).
    """

    def __init__(self, claims_to_headers: Mapping[str, str]) -> None:
        self._map = tuple(claims_to_headers.items())

    def render(self, identity: Identity) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for header, source in self._map:
            value = header_value(_attribute(identity, source))
            if value is not None:
                out.append((header, value))
        return tuple(out)
