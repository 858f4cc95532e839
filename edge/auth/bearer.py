"""Extract a bearer token from an ``Authorization`` header value (RFC 6750 §2.1)."""

from __future__ import annotations

import re

from edge.auth.errors import AuthError

# RFC 6750 §2.1 b64token. Anchored with \Z so a trailing newline cannot slip through.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")


def bearer_token(authorization: str | None) -> str:
    """Return the token of ``Authorization: Bearer <token>``.

    The scheme is matched case-insensitively. Raises AuthError:

    - ``missing_token()`` (401, no error code) when the header is absent, empty
      or uses another scheme: the request carried no bearer credentials;
    - ``invalid_request`` (400) when it says Bearer but the token is absent or
      not b64token syntax.

    The token's contents are never checked here: that is the verifier's job.
    Callers must refuse a request with several Authorization headers before
    calling this (``invalid_request``), since which one counts would be ambiguous.
    """
    if authorization is None:
        raise AuthError.missing_token()
    scheme, _, rest = authorization.strip(" \t").partition(" ")
    if not scheme:
        raise AuthError.missing_token()
    if scheme.lower() != "bearer":
        raise AuthError.missing_token()
    token = rest.strip(" ")
    if not token or not _B64TOKEN.match(token):
        raise AuthError.invalid_request("malformed authorization header")
    return token
