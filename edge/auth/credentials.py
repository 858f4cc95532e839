"""Which credential a request presents: a bearer token or an API key (pure).

Accepted forms: ``Authorization: Bearer <token>`` (RFC 6750 §2.1),
``Authorization: ApiKey <key>`` and ``X-API-Key: <key>``. A request may present
one credential only: two Authorization headers, two X-API-Key headers, or a
bearer token and an API key together are refused (``invalid_request``) since
which one counts would be ambiguous. Other Authorization schemes (Basic ...)
are not credentials the edge checks; the request counts as presenting none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from multidict import CIMultiDictProxy, istr

from edge.auth.bearer import bearer_token
from edge.auth.errors import AuthError

API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = "apikey"

# Look-up keys for the multidicts of headers: an istr carries its case-folded
# form, so a look-up with it skips folding the name again on every request.
AUTHORIZATION_KEY = istr("Authorization")
API_KEY_KEY = istr(API_KEY_HEADER)

CredentialKind = Literal["bearer", "apikey"]
METHOD_OF_KIND: Mapping[CredentialKind, Literal["jwt", "apikey"]] = {
    "bearer": "jwt",
    "apikey": "apikey",
}


@dataclass(frozen=True, slots=True)
class Credential:
    """One presented credential and its kind. ``repr`` never shows the secret."""

    kind: CredentialKind
    secret: str

    def __repr__(self) -> str:
        return f"Credential({self.kind!r}, <{len(self.secret)} chars>)"


def presented_credential(headers: CIMultiDictProxy[str]) -> Credential | None:
    """The request's credential, or None when it presents none.

    Raises AuthError ``invalid_request`` (400) for ambiguous or malformed ones.
    """
    authorizations = headers.getall(AUTHORIZATION_KEY, ())
    api_keys = headers.getall(API_KEY_KEY, ())
    if len(authorizations) > 1 or len(api_keys) > 1:
        raise AuthError.invalid_request("more than one credential")
    found: Credential | None = None
    if authorizations:
        value = authorizations[0]
        scheme, _, rest = value.strip(" \t").partition(" ")
        if scheme.lower() == "bearer":
            found = Credential("bearer", bearer_token(value))
        elif scheme.lower() == API_KEY_SCHEME:
            found = _api_key(rest)
    if api_keys:
        if found is not None:
            raise AuthError.invalid_request("more than one credential")
        found = _api_key(api_keys[0])
    return found


def _api_key(value: str) -> Credential:
    key = value.strip(" \t")
    if not key:
        raise AuthError.invalid_request("empty api key")
    return Credential("apikey", key)
