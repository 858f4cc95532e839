"""Authentication settings of the edge (global, and per route).

Which methods exist follows from what is configured: bearer tokens (method
``jwt``) once ``jwks`` (mode ``jwt``) or ``introspection`` (mode
``introspect``) says where the auth service is; API keys (method ``apikey``)
once ``api_keys.redis_url`` is set. Routes without an ``auth`` section get
``default_route``, which by default requires authentication as soon as any
method is configured, and requires nothing while none is. Identity headers are
stripped from every request either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edge.auth.jwt_verifier import DEFAULT_ALGORITHMS
from edge.auth.keys import SUPPORTED_ALGORITHMS
from mesh.config.types import Duration, Frozen, HeaderName, PositiveDuration
from mesh.identity.headers import (
    DEFAULT_IDENTITY_HEADERS,
    IDENTITY_TOKEN_HEADER,
    header_key,
)
from mesh.identity.keys import IdentityAlgorithm
from mesh.identity.token import DEFAULT_ISSUER

AuthMethod = Literal["jwt", "apikey"]
"""``jwt``: a bearer token (verified locally or by introspection); ``apikey``: an API key."""
BearerMode = Literal["jwt", "introspect"]
"""How bearer tokens are verified: locally against the JWKS, or by asking the auth service."""
AuthPolicy = Literal["required", "optional", "none"]

MAX_LEEWAY_S = 60.0

IDENTITY_SOURCES = (
    "sub",
    "roles",
    "email",
    "consumer",
    "method",
    "plan",
    "client_id",
    "provider",
)
"""Names the claim-to-header map reads from the caller's identity; any other name
is read from the token's own claims (and is absent for API keys)."""

DEFAULT_PROVIDER = "default"
"""The name of the provider the top-level ``issuer``, ``audience`` and ``jwks`` make."""

DEFAULT_CLAIM_HEADERS: dict[str, str] = {
    "X-User-Id": "sub",
    "X-User-Roles": "roles",
    "X-User-Email": "email",
    "X-Consumer-Id": "consumer",
    "X-Auth-Method": "method",
    "X-Auth-Provider": "provider",
}


_PROVIDER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


def _asymmetric_algorithms(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("must list at least one algorithm")
    for alg in value:
        if alg not in SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"{alg!r} is not allowed; choose from {', '.join(sorted(SUPPORTED_ALGORITHMS))}"
            )
    return value


def _bounded_leeway(value: float) -> float:
    if value > MAX_LEEWAY_S:
        raise ValueError(f"must be at most {MAX_LEEWAY_S:g} seconds")
    return value


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must start with '/'")
    return value


class RouteAuthConfig(Frozen):
    """The authentication policy of one route.

    Written in full (``auth: {policy: required, roles: [admin]}``) or as the
    policy alone (``auth: none``).
    """

    policy: AuthPolicy = "required"
    """``required``: refuse callers without valid credentials (401); ``optional``:
    let anonymous callers through, but refuse invalid credentials; ``none``: no
    authentication (credentials are passed on untouched)."""
    methods: tuple[AuthMethod, ...] | None = None
    """Accepted methods; default: every configured one."""
    roles: tuple[str, ...] = ()
    """The caller needs at least one of these roles (403 otherwise); default: any caller."""
    mode: BearerMode | None = None
    """How bearer tokens are verified on this route; default: ``auth.mode``."""
    providers: tuple[str, ...] | None = None
    """Names of the JWT providers (``auth.providers``, ``default`` for the top-level
    issuer) whose tokens this route accepts; default: every configured one. A
    verified token of another provider is refused with 401 ``invalid_token``."""

    @model_validator(mode="before")
    @classmethod
    def _policy_shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"policy": value}
        return value

    @field_validator("methods")
    @classmethod
    def _some_methods(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("must name at least one method (or be null for all)")
        return tuple(dict.fromkeys(value)) if value is not None else None

    @field_validator("providers")
    @classmethod
    def _some_providers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("must name at least one provider (or be null for all)")
        return tuple(dict.fromkeys(value)) if value is not None else None

    @field_validator("roles")
    @classmethod
    def _printable_roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for role in value:
            if not role or not role.isprintable():
                raise ValueError("roles must be non-empty printable strings")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> RouteAuthConfig:
        if self.policy != "required" and self.roles:
            raise ValueError("roles need policy: required")
        if self.policy == "none" and (
            self.methods is not None or self.mode is not None or self.providers is not None
        ):
            raise ValueError("methods, mode and providers make no sense with policy: none")
        return self


class ServiceEndpoint(Frozen):
    """An HTTP endpoint of the auth service: a fixed ``url``, or a ``service`` in the
    catalog reached at ``path`` (a healthy instance is picked for every call)."""

    url: str | None = None
    service: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("path", check_fields=False)
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _absolute_path(value)

    @model_validator(mode="after")
    def _one_source(self) -> ServiceEndpoint:
        if self.url is not None and self.service is not None:
            raise ValueError("set either url or service, not both")
        return self

    @property
    def configured(self) -> bool:
        return self.url is not None or self.service is not None


class JwksConfig(ServiceEndpoint):
    """Where the auth service's JSON Web Key Set is, and how it is cached."""

    url: str | None = None
    """A fixed URL, e.g. ``http://auth.internal/.well-known/jwks.json``."""
    service: str | None = None
    """Or the name of the auth service in the catalog: a healthy instance is
    picked for every fetch, at ``path``."""
    path: str = "/.well-known/jwks.json"
    cooldown: PositiveDuration = 30.0
    """Least time between two fetches (an unknown kid fetches at most once per cooldown)."""
    default_max_age: Duration = 300.0
    """Lifetime of a key set served without Cache-Control max-age."""
    max_stale: Duration | None = None
    """How long past its max-age a key set keeps serving while fetches fail;
    null: as long as fetches fail."""
    fetch_timeout: PositiveDuration = 5.0


class JwtProviderConfig(Frozen):
    """One identity provider whose JWTs are verified locally (``auth.providers.<name>``).

    A token's ``iss`` picks its provider; it is then verified exactly as with the
    top-level settings, with this provider's keys, audience, algorithms and leeway.
    """

    issuer: str = Field(min_length=1)
    """The ``iss`` this provider's tokens carry (exact match); unique among providers."""
    audience: str = Field(min_length=1)
    """Required ``aud`` (exact match)."""
    jwks: JwksConfig
    """The provider's key set: ``url`` or ``service`` is required."""
    algorithms: tuple[str, ...] | None = None
    """Allowed signature algorithms; null: ``auth.algorithms``."""
    leeway: Duration | None = None
    """Clock skew allowed for exp/nbf/iat, at most 60 s; null: ``auth.leeway``."""

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _asymmetric_algorithms(value)

    @field_validator("leeway")
    @classmethod
    def _leeway(cls, value: float | None) -> float | None:
        return None if value is None else _bounded_leeway(value)

    @field_validator("jwks")
    @classmethod
    def _jwks_source(cls, value: JwksConfig) -> JwksConfig:
        if not value.configured:
            raise ValueError("url or service is required")
        return value


@dataclass(frozen=True, slots=True)
class JwtProvider:
    """A provider with its settings resolved (nothing left to the global defaults)."""

    name: str
    issuer: str
    audience: str
    jwks: JwksConfig
    algorithms: tuple[str, ...]
    leeway: float


class IntrospectionConfig(ServiceEndpoint):
    """The auth service's RFC 7662 introspection endpoint, for mode ``introspect``."""

    url: str | None = None
    service: str | None = None
    """Or the auth service's name in the catalog, reached at ``path``."""
    path: str = "/auth/introspect"
    client_id: str | None = None
    """The edge's own client credentials at the auth service (HTTP Basic)."""
    client_secret: str = Field(default="", repr=False)
    max_ttl: Duration = 300.0
    """Longest an active answer is reused (bounds how late a revocation is seen)."""
    negative_ttl: Duration = 5.0
    """How long an inactive answer is reused."""
    timeout: Duration = 5.0


class ApiKeysConfig(Frozen):
    """API keys, kept in Redis as SHA-256 digests (``meshgate apikey create|revoke|list``)."""

    redis_url: str | None = None
    """e.g. ``redis://redis:6379/0``; null: API keys are off."""
    cache_ttl: Duration = 5.0
    """How long the edge reuses a look-up: a revoked key is refused within this time."""
    key_prefix: str = "meshgate:apikeys:"
    """Prefix of the Redis keys (the CLI's ``--prefix`` must match)."""
    timeout: PositiveDuration = 1.0
    """Bound on one Redis look-up (then 503)."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("cache_ttl")
    @classmethod
    def _ttl(cls, value: float) -> float:
        if not 0 < value <= 300:
            raise ValueError("must be more than 0 and at most 300 seconds")
        return value

    @property
    def enabled(self) -> bool:
        return self.redis_url is not None


class IdentityTokenConfig(Frozen):
    """The short-lived token the edge signs for the services (checked by sidecars)."""

    enabled: bool = True
    header: HeaderName = IDENTITY_TOKEN_HEADER
    algorithm: IdentityAlgorithm = "ES256"
    """For a key generated at start; a key file's own type decides otherwise."""
    signing_key_file: str | None = None
    """PEM private key (P-256 or Ed25519); null: a new key at every start (then
    sidecars must use the edge's JWKS, ``identity.edge_jwks_url``)."""
    lifetime: Duration = 30.0
    """Seconds a token stays valid (whole seconds, 1 to 300)."""
    issuer: str = DEFAULT_ISSUER

    @field_validator("lifetime")
    @classmethod
    def _lifetime(cls, value: float) -> float:
        if not 1 <= value <= 300 or value != int(value):
            raise ValueError("must be whole seconds, from 1 to 300")
        return value


class IdentityConfig(Frozen):
    """The identity headers the edge manages, and what it puts in them."""

    headers: tuple[HeaderName, ...] = DEFAULT_IDENTITY_HEADERS
    """Managed headers: every client copy is removed from every request (any
    case, any duplicate, ``_`` for ``-``); only the edge sets them."""
    claims: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CLAIM_HEADERS))
    """Header → what it carries for an authenticated caller: sub, roles (comma
    separated), email, consumer, method, plan, client_id, or any token claim."""
    token: IdentityTokenConfig = IdentityTokenConfig()

    @model_validator(mode="after")
    def _claims_go_to_managed_headers(self) -> IdentityConfig:
        managed = {header_key(h) for h in self.headers}
        for header, source in self.claims.items():
            if header_key(header) not in managed:
                raise ValueError(
                    f"claims: {header} is not in identity.headers (a client could send it)"
                )
            if not source or not source.isprintable():
                raise ValueError(f"claims: {header}: the claim name must be printable")
        if header_key(self.token.header) in managed:
            raise ValueError("token.header must not be one of identity.headers")
        return self


class AuthConfig(Frozen):
    """Global authentication settings of the edge."""

    mode: BearerMode = "jwt"
    """How bearer tokens are verified: ``jwt`` locally with ``jwks``, ``introspect``
    by asking ``introspection``. A route may override it."""
    issuer: str | None = None
    """Required ``iss`` (exact match); required for mode ``jwt``."""
    audience: str | None = None
    """Required ``aud`` (exact match); required for mode ``jwt``."""
    algorithms: tuple[str, ...] = tuple(sorted(DEFAULT_ALGORITHMS))
    """Allowed signature algorithms (asymmetric only; each key also limits its own)."""
    leeway: Duration = 30.0
    """Clock skew allowed for exp/nbf/iat, at most 60 s."""
    max_token_bytes: int = Field(default=8192, ge=256, le=65536)
    """Longer bearer tokens are refused before any decoding."""
    cache_max_entries: int = Field(default=10_000, ge=1)
    """Verified tokens (and API keys) remembered, least recently used first out."""
    realm: str = "meshgate"
    """The realm of the WWW-Authenticate challenges."""
    forward_credentials: bool = False
    """Pass the caller's Authorization / X-API-Key on to the service once verified
    (default: removed; the service gets the identity headers and token instead)."""
    jwks: JwksConfig = JwksConfig()
    providers: dict[str, JwtProviderConfig] = Field(default_factory=dict)
    """More identity providers, by name, beside the top-level ``issuer``/``jwks``
    (which are the provider named ``default`` when ``jwks`` is set). A token's
    ``iss`` picks the provider (exact match), so issuers must be unique."""
    introspection: IntrospectionConfig = IntrospectionConfig()
    api_keys: ApiKeysConfig = ApiKeysConfig()
    identity: IdentityConfig = IdentityConfig()
    default_route: RouteAuthConfig | None = None
    """Policy of routes without ``auth``; null: ``required`` once a method is
    configured, ``none`` while none is."""

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _asymmetric_algorithms(value)

    @field_validator("leeway")
    @classmethod
    def _leeway(cls, value: float) -> float:
        return _bounded_leeway(value)

    @field_validator("providers")
    @classmethod
    def _distinct_providers(
        cls, value: Mapping[str, JwtProviderConfig]
    ) -> Mapping[str, JwtProviderConfig]:
        seen: dict[str, str] = {}
        for name, provider in value.items():
            if not _PROVIDER_NAME.match(name):
                raise ValueError(f"{name!r}: names are 1 to 64 of A-Z a-z 0-9 _ . -")
            if provider.issuer in seen:
                raise ValueError(
                    f"{name}.issuer: provider {seen[provider.issuer]} has the same issuer "
                    "(a token's iss must pick one provider)"
                )
            seen[provider.issuer] = name
        return value

    @model_validator(mode="after")
    def _usable(self) -> AuthConfig:
        if self.jwks.configured and (not self.issuer or not self.audience):
            raise ValueError("issuer and audience are required to verify JWTs (auth.jwks is set)")
        if self.jwks.configured:
            if DEFAULT_PROVIDER in self.providers:
                raise ValueError(
                    f"providers.{DEFAULT_PROVIDER}: the name is taken by the top-level "
                    "issuer and jwks"
                )
            for name, provider in self.providers.items():
                if provider.issuer == self.issuer:
                    raise ValueError(
                        f"providers.{name}.issuer: the top-level issuer is the same "
                        "(a token's iss must pick one provider)"
                    )
        if self.mode == "introspect" and not self.introspection.configured:
            raise ValueError("mode introspect needs introspection.url or introspection.service")
        if self.default_route is not None:
            problem = self.route_problem(self.default_route)
            if problem:
                raise ValueError(f"default_route: {problem}")
        return self

    def jwt_providers(self) -> dict[str, JwtProvider]:
        """Every provider whose tokens are verified locally, by name, settings resolved:
        ``default`` (the top-level ``issuer``, ``audience`` and ``jwks``) first when
        ``jwks`` is set, then ``providers`` in their order. Issuers are distinct."""
        found: dict[str, JwtProvider] = {}
        if self.jwks.configured:
            assert self.issuer is not None and self.audience is not None  # validated
            found[DEFAULT_PROVIDER] = JwtProvider(
                DEFAULT_PROVIDER,
                self.issuer,
                self.audience,
                self.jwks,
                self.algorithms,
                self.leeway,
            )
        for name, p in self.providers.items():
            found[name] = JwtProvider(
                name,
                p.issuer,
                p.audience,
                p.jwks,
                p.algorithms if p.algorithms is not None else self.algorithms,
                p.leeway if p.leeway is not None else self.leeway,
            )
        return found

    def bearer_available(self, mode: BearerMode) -> bool:
        """True if bearer tokens can be verified in ``mode``."""
        if mode == "jwt":
            return self.jwks.configured or bool(self.providers)
        return self.introspection.configured

    def available_methods(self, mode: BearerMode | None = None) -> tuple[AuthMethod, ...]:
        """The methods that work (for bearer tokens verified in ``mode``, default ``self.mode``)."""
        methods: list[AuthMethod] = []
        if self.bearer_available(mode or self.mode):
            methods.append("jwt")
        if self.api_keys.enabled:
            methods.append("apikey")
        return tuple(methods)

    @property
    def any_method(self) -> bool:
        """True once any authentication method is configured."""
        return bool(self.available_methods()) or self.bearer_available("introspect")

    def effective_default_route(self) -> RouteAuthConfig:
        """``default_route``, or its documented default when null."""
        if self.default_route is not None:
            return self.default_route
        return RouteAuthConfig(policy="required" if self.any_method else "none")

    def workers_problem(self, workers: int) -> str | None:
        """Why this config cannot run in ``workers`` processes, or None.

        Each worker would generate its own identity key, and sidecars could
        verify only one of them: several workers need a shared key file.
        """
        token = self.identity.token
        if workers > 1 and self.any_method and token.enabled and token.signing_key_file is None:
            return (
                "auth.identity.token.signing_key_file is required with workers > 1 "
                "(each worker would sign identity tokens with its own key)"
            )
        return None

    def routes_problem(self, routes: Iterable[RouteAuthConfig | None]) -> tuple[int, str] | None:
        """The first of ``routes`` (each route's ``auth``) that cannot work with this
        config: its index and :meth:`route_problem`'s answer; None when all can."""
        for i, route in enumerate(routes):
            problem = self.route_problem(route)
            if problem is not None:
                return i, problem
        return None

    def route_problem(self, route: RouteAuthConfig | None) -> str | None:
        """Why ``route`` (None: the default policy) cannot work with this config, or None."""
        policy = route if route is not None else self.effective_default_route()
        if policy.policy == "none":
            return None
        mode = policy.mode or self.mode
        if mode == "introspect" and not self.introspection.configured:
            return "mode introspect needs auth.introspection.url or .service"
        available = self.available_methods(mode)
        for method in policy.methods or ():
            if method not in available:
                where = "auth.api_keys.redis_url" if method == "apikey" else _bearer_keys(mode)
                return f"method {method} is not configured ({where})"
        if not available:
            return (
                f"policy {policy.policy} needs an authentication method, and none is "
                "configured (auth.jwks, auth.providers, auth.introspection or auth.api_keys)"
            )
        if policy.providers is not None:
            return self._providers_problem(policy.providers, mode, policy.methods)
        return None

    def _providers_problem(
        self, names: tuple[str, ...], mode: BearerMode, methods: tuple[AuthMethod, ...] | None
    ) -> str | None:
        if mode != "jwt":
            return "providers need mode jwt (introspected tokens have no provider)"
        if methods is not None and "jwt" not in methods:
            return "providers need method jwt"
        configured = self.jwt_providers()
        for name in names:
            if name not in configured:
                known = ", ".join(configured) or "none"
                return f"provider {name} is not configured (auth.providers; configured: {known})"
        return None


def _bearer_keys(mode: BearerMode) -> str:
    if mode == "jwt":
        return "auth.jwks.url or .service, or auth.providers"
    return "auth.introspection.url or .service"
