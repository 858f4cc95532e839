"""CORS decisions (pure): is an origin allowed, what a preflight is answered, which
headers an allowed cross-origin response carries. Follows the Fetch standard's CORS
protocol, as Envoy's CORS filter and nginx set-ups apply it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.cors.config import CorsConfig

ALLOW_ORIGIN = "Access-Control-Allow-Origin"
ALLOW_CREDENTIALS = "Access-Control-Allow-Credentials"
EXPOSE_HEADERS = "Access-Control-Expose-Headers"
REQUEST_METHOD = "Access-Control-Request-Method"
REQUEST_HEADERS = "Access-Control-Request-Headers"


@dataclass(frozen=True, slots=True)
class PreflightRefused:
    """A preflight the policy does not allow; ``detail`` says what, for the 403."""

    detail: str


class CorsPolicy:
    """Built once from the config; every method is a pure function of its arguments."""

    def __init__(self, config: CorsConfig) -> None:
        origins = {o.lower() for o in config.allow_origins}
        self.any_origin = "*" in origins
        self._exact = frozenset(o for o in origins if "*" not in o)
        # "https://*.example.com" → ("https://", ".example.com"): any subdomain, not the apex.
        self._wild = tuple(
            (scheme + "://", rest[1:])
            for scheme, _, rest in (o.partition("://") for o in origins if "*" in o and o != "*")
        )
        self._methods = frozenset(config.allow_methods)
        self._allow_methods = ", ".join(config.allow_methods)
        headers = {h.lower() for h in config.allow_headers}
        self._any_header = "*" in headers
        self._headers = frozenset(headers - {"*"})
        self._allow_headers = ", ".join(h for h in config.allow_headers if h != "*")
        self._credentials = config.allow_credentials
        self._max_age = str(int(config.max_age))
        self._expose = ", ".join(config.expose_headers)
        # With any origin and no credentials the answer is the same for every origin.
        self._origin_fixed = self.any_origin and not self._credentials

    def allows(self, origin: str) -> bool:
        """Whether pages from ``origin`` (the request's ``Origin``) may call the edge."""
        if self.any_origin:
            return True
        origin = origin.lower()
        if origin in self._exact:
            return True
        return any(
            origin.startswith(scheme)
            and origin.endswith(suffix)
            and len(origin) > len(scheme) + len(suffix)
            for scheme, suffix in self._wild
        )

    def response_headers(self, origin: str) -> list[tuple[str, str]]:
        """What an allowed cross-origin response carries (``origin`` allowed)."""
        headers = [(ALLOW_ORIGIN, "*" if self._origin_fixed else origin)]
        if self._credentials:
            headers.append((ALLOW_CREDENTIALS, "true"))
        if self._expose:
            headers.append((EXPOSE_HEADERS, self._expose))
        return headers

    def vary(self) -> str:
        """The request headers the answers depend on ("" when none does)."""
        return "" if self._origin_fixed else "Origin"

    def preflight(
        self, origin: str, method: str, requested_headers: str | None
    ) -> list[tuple[str, str]] | PreflightRefused:
        """The headers of the 204 answering a preflight, or why it is refused."""
        if not self.allows(origin):
            return PreflightRefused(f"origin {origin!r} is not allowed")
        if method not in self._methods:
            return PreflightRefused(f"method {method!r} is not allowed")
        asked = [h.strip() for h in (requested_headers or "").split(",") if h.strip()]
        if not self._any_header:
            refused = [h for h in asked if h.lower() not in self._headers]
            if refused:
                return PreflightRefused(f"request header {refused[0]!r} is not allowed")
        allow_headers = ", ".join(asked) if self._any_header else self._allow_headers
        headers = [
            (ALLOW_ORIGIN, "*" if self._origin_fixed else origin),
            ("Access-Control-Allow-Methods", self._allow_methods),
            ("Access-Control-Max-Age", self._max_age),
        ]
        if allow_headers:
            headers.append(("Access-Control-Allow-Headers", allow_headers))
        if self._credentials:
            headers.append((ALLOW_CREDENTIALS, "true"))
        return headers
