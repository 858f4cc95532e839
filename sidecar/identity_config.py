"""Configuration of the sidecar's inbound identity check (the edge's signed identity token)."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from mesh.config.types import Duration, Frozen, HeaderName, PositiveDuration
from mesh.identity.headers import (
    DEFAULT_IDENTITY_HEADERS,
    IDENTITY_TOKEN_HEADER,
    header_key,
)
from mesh.identity.token import DEFAULT_ISSUER


class SidecarIdentityConfig(Frozen):
    """Check the identity the edge asserts before the app sees it.

    With neither key source set, the check is off and identity headers pass
    untouched. With one: a request whose identity token is valid reaches the
    app with exactly the identity headers the edge signed; any other request
    carrying identity headers (or a bad token) is refused with 401 when
    ``require`` is true, and has them removed when it is false.
    """

    edge_public_key_file: str | None = None
    """PEM public key of the edge's identity key (the pair of the edge's
    ``auth.identity.token.signing_key_file``)."""
    edge_jwks_url: str | None = None
    """Or the edge's JWKS, e.g. ``http://edge:9901/identity/jwks.json`` (its admin listener)."""
    require: bool = False
    """Refuse (401) identity headers without a valid edge signature, instead of removing them."""
    headers: tuple[HeaderName, ...] = DEFAULT_IDENTITY_HEADERS
    """The managed identity headers (as the edge's ``auth.identity.headers``)."""
    token_header: HeaderName = IDENTITY_TOKEN_HEADER
    issuer: str = DEFAULT_ISSUER
    leeway: Duration = 5.0
    """Clock skew allowed between the edge and this host."""
    jwks_refresh: PositiveDuration = 300.0
    """How often the edge's JWKS is fetched again (edge_jwks_url)."""
    jwks_cooldown: PositiveDuration = 5.0
    """Least time between two fetches, e.g. for tokens signed by a key not yet known."""

    @field_validator("edge_jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("leeway")
    @classmethod
    def _leeway(cls, value: float) -> float:
        if value > 60:
            raise ValueError("must be at most 60 seconds")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> SidecarIdentityConfig:
        if self.edge_public_key_file is not None and self.edge_jwks_url is not None:
            raise ValueError("set either edge_public_key_file or edge_jwks_url, not both")
        if self.require and not self.enabled:
            raise ValueError("require needs edge_public_key_file or edge_jwks_url")
        if header_key(self.token_header) in {header_key(h) for h in self.headers}:
            raise ValueError("token_header must not be one of headers")
        return self

    @property
    def enabled(self) -> bool:
        return self.edge_public_key_file is not None or self.edge_jwks_url is not None
