"""Refusals as HTTP: RFC 6750 challenges and problem bodies that never echo a credential.

A refusal of a presented credential carries one challenge, in the scheme that
was used (``Bearer``, or ``ApiKey`` for API keys), with the error and its
description. A request that presented nothing gets one bare challenge per
method the route accepts, so the client learns what it could send.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict

from edge.auth.credentials import CredentialKind
from edge.auth.errors import AuthError

_SCHEME = {"bearer": "Bearer", "apikey": "ApiKey"}
_KIND_OF_METHOD: dict[str, CredentialKind] = {"jwt": "bearer", "apikey": "apikey"}
_TITLE = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden"}


def challenges(
    error: AuthError,
    *,
    presented: CredentialKind | None,
    accepted_methods: Iterable[str],
    realm: str,
) -> CIMultiDict[str]:
    """The ``WWW-Authenticate`` headers of a refusal.

    ``presented`` is the kind of credential the request carried (None: none,
    or one too malformed to tell). 400 refusals get no challenge.
    """
    headers: CIMultiDict[str] = CIMultiDict()
    if error.status == 400:
        return headers
    # AuthError renders the Bearer form; other schemes reuse its parameters.
    rendered = error.www_authenticate(realm=realm)
    params = rendered[len("Bearer") :]
    if presented is not None:
        headers.add("WWW-Authenticate", _SCHEME[presented] + params)
        return headers
    kinds = [_KIND_OF_METHOD[m] for m in sorted(accepted_methods) if m in _KIND_OF_METHOD]
    for kind in sorted(set(kinds), key=lambda k: k != "bearer") or ["bearer"]:
        headers.add("WWW-Authenticate", _SCHEME[kind] + params)
    return headers


def title(error: AuthError) -> str:
    """The problem title for ``error``'s status."""
    return _TITLE.get(error.status, "Unauthorized")
