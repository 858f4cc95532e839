"""The single error type of edge authentication, rendered as an RFC 6750 challenge.

Every refusal the auth code makes is an :class:`AuthError`. The HTTP filter turns
it into a response with :meth:`AuthError.www_authenticate` and :meth:`AuthError.body`
and never needs to know which check failed.

Contract: descriptions are short fixed phrases chosen by this package ("token
expired", "unknown kid", ...). They never contain any part of the token or of
its header, so a response or a log line built from an AuthError cannot leak a
credential or reflect attacker-chosen bytes.
"""

from __future__ import annotations

from typing import Literal

AuthErrorCode = Literal["invalid_token", "invalid_request", "insufficient_scope"]

# RFC 6750 §3.1 fixes the status code that goes with each error code.
_STATUS_FOR_CODE: dict[AuthErrorCode | None, int] = {
    "invalid_request": 400,
    "invalid_token": 401,
    "insufficient_scope": 403,
    None: 401,
}


def _quoted(value: str) -> str:
    """Render ``value`` as an HTTP quoted-string that is safe in a header.

    Backslash and double quote are escaped (quoted-pair); anything outside
    printable ASCII, CR and LF included, becomes ``?`` so the value can never
    split or smuggle a header line.
    """
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("?")
    return '"' + "".join(out) + '"'


class AuthError(Exception):
    """A request was refused by authentication or authorization.

    ``code`` is the RFC 6750 error code, or None when the request carried no
    credentials at all (RFC 6750 §3.1: the challenge then SHOULD NOT carry an
    error code). ``status`` defaults to the status RFC 6750 pairs with the code:
    400 invalid_request, 401 invalid_token or no credentials, 403
    insufficient_scope. ``scope`` is the space-separated scope a 403 needed.
    """

    def __init__(
        self,
        code: AuthErrorCode | None,
        description: str,
        status: int | None = None,
        *,
        scope: str | None = None,
    ) -> None:
        super().__init__(description)
        self.code: AuthErrorCode | None = code
        self.description = description
        self.status: int = _STATUS_FOR_CODE[code] if status is None else status
        self.scope = scope

    @classmethod
    def invalid_token(cls, description: str) -> AuthError:
        """401: the token is expired, revoked, malformed or otherwise not acceptable."""
        return cls("invalid_token", description)

    @classmethod
    def invalid_request(cls, description: str) -> AuthError:
        """400: the request itself is malformed (e.g. two Authorization headers)."""
        return cls("invalid_request", description)

    @classmethod
    def insufficient_scope(cls, description: str, scope: str | None = None) -> AuthError:
        """403: the token is valid but does not grant what the route requires."""
        return cls("insufficient_scope", description, scope=scope)

    @classmethod
    def missing_token(cls) -> AuthError:
        """401 without an error code: no credentials were presented."""
        return cls(None, "missing bearer token")

    def www_authenticate(self, realm: str | None = None) -> str:
        """The ``WWW-Authenticate`` header value for this error.

        Example: ``Bearer realm="api", error="invalid_token",
        error_description="token expired"``. Every parameter is quoted and
        escaped; the token is never part of it because descriptions never are.
        """
        params: list[str] = []
        if realm is not None:
            params.append("realm=" + _quoted(realm))
        if self.code is not None:
            params.append("error=" + _quoted(self.code))
            params.append("error_description=" + _quoted(self.description))
        if self.scope is not None:
            params.append("scope=" + _quoted(self.scope))
        return "Bearer " + ", ".join(params) if params else "Bearer"

    def body(self) -> dict[str, str]:
        """A JSON-ready body saying what was wrong (without echoing the token).

        ``error`` is the RFC 6750 code, or ``"unauthorized"`` when no
        credentials were presented.
        """
        body = {
            "error": self.code if self.code is not None else "unauthorized",
            "error_description": self.description,
        }
        if self.scope is not None:
            body["scope"] = self.scope
        return body

    def __repr__(self) -> str:
        return f"AuthError({self.code!r}, {self.description!r}, status={self.status})"
