"""The ``cors`` section of the edge's config."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from mesh.config.types import Duration, Frozen

DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_HEADERS = ("Authorization", "Content-Type", "X-API-Key", "X-Request-Id")
DEFAULT_EXPOSE = (
    "X-Request-Id",
    "traceresponse",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
)


class CorsConfig(Frozen):
    """Which web origins a browser may call the edge from, and how."""

    allow_origins: tuple[str, ...] = Field(min_length=1)
    """Origins allowed, as a browser sends them (``https://app.example.com``, with a
    port when not the scheme's default); ``https://*.example.com`` allows every
    subdomain; ``"*"`` allows any origin (not with ``allow_credentials``)."""
    allow_methods: tuple[str, ...] = DEFAULT_METHODS
    """Methods a preflight may ask for."""
    allow_headers: tuple[str, ...] = DEFAULT_HEADERS
    """Request headers a preflight may ask for (any case); ``"*"``: any."""
    expose_headers: tuple[str, ...] = DEFAULT_EXPOSE
    """Response headers a page's script may read, besides the CORS-safelisted ones."""
    allow_credentials: bool = False
    """Let pages send cookies or HTTP authentication and read the answer."""
    max_age: Duration = 600.0
    """How long a browser may cache a preflight's answer."""

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin == "*":
                continue
            scheme, sep, rest = origin.partition("://")
            if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], e.g. "
                    "'https://app.example.com', or '*'"
                )
            if ("*" in rest and not rest.startswith("*.")) or rest.count("*") > 1:
                raise ValueError(f"{origin!r}: a wildcard may only start the host ('*.')")
        return value

    @field_validator("allow_methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.upper() for m in value)

    @model_validator(mode="after")
    def _credentials_need_origins(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                "allow_credentials needs the origins listed: with '*' any site could make "
                "credentialed calls (browsers refuse '*' with credentials anyway)"
            )
        return self
