"""Who is calling, as far as rate limits care: read from the auth feature's identity.

The auth feature runs before rate limits and leaves the verified caller in
``ex.attrs["identity"]``. Rate limiting needs only a few facts from it, listed
by :class:`Identity`; anything else the auth feature adds is ignored, and a
missing attribute reads as absent. No identity at all (no auth feature, or an
anonymous request) is the :data:`ANONYMOUS` caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

ANONYMOUS_ROLE = "anonymous"
"""The role every caller without an identity has, so that policies can name it."""

IDENTITY_ATTR = "identity"
"""The ``Exchange.attrs`` key the auth feature stores the caller's identity under."""

API_KEY_METHODS = frozenset({"apikey", "api_key"})
"""``Identity.method`` values of callers that presented an API key."""


class Identity(Protocol):
    """What rate limiting reads from the auth feature's identity object.

    ``subject``: who is calling (JWT ``sub``; for an API key, its consumer).
    ``roles``: the caller's roles. ``consumer``: the API key's consumer (never
    the key itself). ``plan``: the API key's plan, if any. ``claims``: the
    verified token's claims (empty for an API key). ``method``: how the caller
    authenticated (``jwt``, ``introspect``, ``apikey``). For
    :data:`API_KEY_METHODS` the caller is its ``consumer`` (and ``subject`` is
    ignored); for any other method it is its ``subject`` (and ``consumer``, a
    token's ``client_id``, is ignored): ``user`` and ``api_key`` policies
    never count the same caller twice.
    """

    @property
    def subject(self) -> str | None: ...

    @property
    def roles(self) -> Sequence[str]: ...

    @property
    def consumer(self) -> str | None: ...

    @property
    def plan(self) -> str | None: ...

    @property
    def claims(self) -> Mapping[str, Any]: ...

    @property
    def method(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """The caller facts policies use; see :class:`Identity` for each field.

    ``subject`` is set for token callers, ``consumer`` for API-key callers.
    ``authenticated`` is False exactly for the anonymous caller, whose only
    role is :data:`ANONYMOUS_ROLE`.
    """

    authenticated: bool
    subject: str | None = None
    roles: tuple[str, ...] = (ANONYMOUS_ROLE,)
    consumer: str | None = None
    plan: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    method: str = ANONYMOUS_ROLE


ANONYMOUS = Caller(authenticated=False)


def caller_of(identity: object) -> Caller:
    """The :class:`Caller` an identity describes; :data:`ANONYMOUS` for None.

    Reads only the attributes of :class:`Identity`, each optional, and keeps
    only well-formed values (non-empty strings; a mapping for claims; the
    claims of the auth package's ``Claims`` under ``raw``), so an identity type
    that grows or lacks a field cannot break rate limiting.
    """
    if identity is None:
        return ANONYMOUS
    roles_value = getattr(identity, "roles", ())
    roles = tuple(
        r for r in (roles_value if isinstance(roles_value, list | tuple) else ()) if _text(r)
    )
    claims = getattr(identity, "claims", None)
    if not isinstance(claims, Mapping):
        raw = getattr(identity, "raw", None)
        claims = raw if isinstance(raw, Mapping) else MappingProxyType({})
    method = getattr(identity, "method", None)
    method = method if isinstance(method, str) and method else "unknown"
    api_key = method in API_KEY_METHODS
    return Caller(
        authenticated=True,
        subject=None if api_key else _text(getattr(identity, "subject", None)),
        roles=roles,
        consumer=_text(getattr(identity, "consumer", None)) if api_key else None,
        plan=_text(getattr(identity, "plan", None)),
        claims=claims,
        method=method,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
