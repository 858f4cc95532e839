"""The edge's configuration file: schema and loading."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from discovery.settings import ConsulSettings, DiscoverySettings
from edge.auth.config import AuthConfig, RouteAuthConfig
from edge.cache.config import CacheStoreConfig, RouteCacheConfig
from edge.compression.config import CompressionConfig
from edge.cors.config import CorsConfig
from edge.direct.config import DirectResponseConfig, RedirectConfig
from edge.ext_authz.config import ExtAuthzConfig, RouteExtAuthzConfig
from edge.headers.config import HeadersConfig
from edge.ip_access.config import IpAccessConfig
from edge.mirror.config import MirrorConfig
from edge.outliers.config import OutlierDetectionConfig
from edge.ratelimit.config import RateLimitsConfig
from edge.registration import EdgeRegistrationConfig
from edge.retries import RouteRetriesConfig
from edge.route_match import (
    Condition,
    Conditions,
    MatchKind,
    header_condition,
    query_condition,
)
from edge.routes import HTTP_METHODS
from edge.tls import TlsConfig
from edge.upstream_limits.config import UpstreamLimitsConfig
from mesh.canary_config import CanaryConfig
from mesh.config.loader import load_config
from mesh.config.safe_regex import RegexSyntaxError, compile_safe_regex
from mesh.config.sections import AdminConfig, LoggingConfig, ProxyConfig, ShutdownConfig
from mesh.config.types import ByteSize, Duration, Frozen, HeaderName, Port, PositiveDuration
from mesh.connections import ConnectionLimits
from mesh.faults.config import FaultConfig
from mesh.hash_policy_config import HashSourceConfig
from mesh.identity.headers import header_key, header_keys
from mesh.mtls.config import EdgeMeshTlsConfig, mesh_tls_problem
from mesh.telemetry.config import TelemetryConfig


class ValueMatchConfig(Frozen):
    """One condition of a route's ``match``: a name and exactly one of ``exact``,
    ``prefix``, ``regex`` and ``present`` (see :mod:`edge.route_match`). A name sent
    several times matches when any of its values does."""

    name: str
    exact: str | None = None
    """A value equal to this (case-sensitive)."""
    prefix: str | None = None
    """A value starting with this (case-sensitive)."""
    regex: str | None = None
    """A regular expression a value matches in full, in RE2 syntax (linear time; no
    backreferences or lookaround: refused at load)."""
    present: bool | None = None
    """true: sent, with any value (even empty); false: not sent at all."""

    @field_validator("exact", "prefix", "regex", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # YAML reads `exact: 2` as a number and `exact: yes` as a boolean: say how to
        # write the text rather than pydantic's bare "a valid string".
        if isinstance(value, bool | int | float):
            raise ValueError(f'expected text, got {value!r}: quote it, e.g. "{value}"')
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_safe_regex(value)
            except RegexSyntaxError as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ValueMatchConfig:
        given = [k for k in ("exact", "prefix", "regex", "present") if getattr(self, k) is not None]
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            raise ValueError(
                f"give exactly one of exact, prefix, regex and present (found {found})"
            )
        return self

    def kind_and_text(self) -> tuple[MatchKind, str]:
        if self.exact is not None:
            return "exact", self.exact
        if self.prefix is not None:
            return "prefix", self.prefix
        if self.regex is not None:
            return "regex", self.regex
        return ("present" if self.present else "absent"), ""


class HeaderMatchConfig(ValueMatchConfig):
    name: HeaderName
    """A header name, in any case."""

    def condition(self) -> Condition:
        return header_condition(self.name, *self.kind_and_text())


class QueryMatchConfig(ValueMatchConfig):
    name: str = Field(min_length=1)
    """A query parameter name, case-sensitive (percent-decoded, as the values are)."""

    def condition(self) -> Condition:
        return query_condition(self.name, *self.kind_and_text())


class RouteMatchConfig(Frozen):
    """Conditions on the request's headers and query, all of which must hold."""

    headers: tuple[HeaderMatchConfig, ...] = ()
    query: tuple[QueryMatchConfig, ...] = ()

    def conditions(self) -> Conditions | None:
        """None when there is no condition at all."""
        conditions = Conditions(
            tuple(h.condition() for h in self.headers), tuple(q.condition() for q in self.query)
        )
        return conditions if conditions else None


class RouteConfig(Frozen):
    prefix: str | None = None
    """Path prefix, matched on segment boundaries: ``/api/users`` matches
    ``/api/users`` and ``/api/users/7``, not ``/api/usersX``. A route has exactly one of
    ``prefix`` and ``path``."""
    path: str | None = None
    """Exactly this path (after normalisation; ``/docs`` is not ``/docs/``). Tried before
    the prefix routes of its host (nginx's ``location =``)."""
    service: str | None = None
    """Where the requests go. A route has exactly one of ``service``, ``redirect`` and
    ``direct_response``."""
    redirect: RedirectConfig | None = None
    """The edge answers with a redirect (:mod:`edge.direct`) instead of proxying."""
    direct_response: DirectResponseConfig | None = None
    """The edge answers with this status and body instead of proxying."""
    name: str | None = None
    host: str | None = None
    methods: tuple[str, ...] | None = None
    strip_prefix: bool = False
    """Send the path without the matched prefix (``/api/users/7`` → ``/7``)."""
    prefix_rewrite: str | None = None
    """Replace the matched prefix with this (``/api/users/7`` → ``/users/7``)."""
    timeout: Duration | None = None
    """The request's deadline at the edge, passed on to every hop; default: the proxy's
    response timeout."""
    auth: RouteAuthConfig | None = None
    """Authentication policy of this route; default: ``auth.default_route``."""
    rate_limits: tuple[str, ...] | None = None
    """Names of the rate-limit policies that apply; default: ``rate_limits.default_policies``."""
    max_body_size: ByteSize | None = None
    """Largest request body this route takes (413 past it); default: ``listen.max_body_size``."""
    canary: CanaryConfig | None = None
    """Send a share of the requests to the instances with a tag; null: every healthy one."""
    compression: bool | None = None
    """false: never compress this route's answers (with a ``compression`` section);
    null or true: as that section says."""
    ip_access: IpAccessConfig | None = None
    """Client addresses allowed and denied on this route, after the edge's own list;
    null: no list of its own."""
    headers: HeadersConfig | None = None
    """Header changes for this route, after the edge's own (a name both set wins here)."""
    match: RouteMatchConfig | None = None
    """Conditions on the request's headers and query, all of which must hold for this route
    to take it; null: every request for its host and prefix. Tried before a route of the
    same host and prefix without conditions (:mod:`edge.routes`)."""
    fault: FaultConfig | None = None
    """Delays and aborts injected into a share of this route's requests (chaos testing,
    :mod:`mesh.faults`); null: none."""
    mirror: MirrorConfig | None = None
    """Copy a share of the requests to a shadow service, fire and forget (:mod:`edge.mirror`);
    null: none."""
    hash_policy: tuple[HashSourceConfig, ...] | None = Field(default=None, min_length=1)
    """Session affinity: where a request's key comes from, first source present wins
    (:mod:`mesh.hash_policy`); requests with the same key go to the same instance
    (:mod:`mesh.maglev`). null: no affinity."""
    retries: RouteRetriesConfig | None = None
    """Retry failed attempts on other instances, under a budget (:mod:`edge.retries`);
    null: only a failed connect moves on to another instance (``proxy.connect_attempts``)."""
    cache: RouteCacheConfig | None = None
    """Store the service's answers at the edge and serve them while fresh (RFC 9111 shared
    cache, :mod:`edge.cache`); null: every request goes to the service."""
    ext_authz: RouteExtAuthzConfig | None = None
    """External authorization on this route (:mod:`edge.ext_authz`): ``false`` never
    checks it, ``true`` checks it, a block checks it with ``context`` (or says
    ``disabled``); null: as ``ext_authz.check_by_default`` says."""

    @field_validator("prefix", "path", "prefix_rewrite")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        upper = tuple(m.upper() for m in value)
        unknown = [m for m in upper if m not in HTTP_METHODS]
        if unknown:
            raise ValueError(f"unknown HTTP method {unknown[0]!r}")
        return upper

    @model_validator(mode="after")
    def _prefix_or_path(self) -> RouteConfig:
        if (self.prefix is None) == (self.path is None):
            found = "both" if self.prefix is not None else "neither"
            raise ValueError(f"give exactly one of prefix and path (found {found})")
        return self

    @property
    def matched(self) -> str:
        """The prefix or the exact path the route matches."""
        return self.prefix if self.prefix is not None else str(self.path)

    @model_validator(mode="after")
    def _one_action(self) -> RouteConfig:
        actions = [
            k for k in ("service", "redirect", "direct_response") if getattr(self, k) is not None
        ]
        if len(actions) != 1:
            found = " and ".join(actions) if actions else "none"
            raise ValueError(
                f"give exactly one of service, redirect and direct_response (found {found})"
            )
        if self.service is None:
            # What only a proxied request has: the edge's own answer would ignore them.
            proxied = [k for k in _PROXIED_ONLY if getattr(self, k) not in (None, False)]
            if proxied:
                raise ValueError(
                    f"{proxied[0]}: a route with {actions[0]} is answered by the edge, "
                    "no service; remove the key"
                )
        return self

    @model_validator(mode="after")
    def _one_rewrite(self) -> RouteConfig:
        if self.strip_prefix and self.prefix_rewrite is not None:
            raise ValueError("use either strip_prefix or prefix_rewrite, not both")
        return self

    @model_validator(mode="after")
    def _mirror_elsewhere(self) -> RouteConfig:
        if self.mirror is not None and self.mirror.service == self.service:
            # Every copy would go to the instances taking the request itself.
            raise ValueError(f"mirror.service: {self.service!r} is the route's own service")
        return self


_PROXIED_ONLY = (
    "strip_prefix",
    "prefix_rewrite",
    "timeout",
    "canary",
    "mirror",
    "hash_policy",
    "retries",
    "cache",
)
"""Route keys about the service's side of a request, refused on a route without one."""


class ListenConfig(Frozen):
    host: str = "0.0.0.0"
    port: Port = 8080
    idle_timeout: PositiveDuration = 60.0
    """A client connection must deliver a complete request head within this time of
    opening, or of its previous response; otherwise it is closed. Bounds both an idle
    keep-alive connection and a head sent too slowly (slowloris)."""
    body_timeout: PositiveDuration = 60.0
    """Longest pause allowed between two pieces of a request body; after it the client
    gets a 408 problem and the request to the service is abandoned."""
    max_connections: int | None = Field(default=10_000, ge=1)
    """Client connections open at once, per process; one more is closed as soon as it is
    accepted (and counted as refused). null: no limit."""
    max_body_size: ByteSize | None = None
    """Largest request body a route takes unless it says otherwise: a larger declared
    Content-Length gets a 413 problem at once, a chunked body growing past it a 413 (or,
    once the service has answered, a cut connection). null: no limit."""
    max_connections_per_address: int | None = Field(default=None, ge=1)
    """The same, per client IP address. null (the default): no limit; behind a load
    balancer every connection comes from its address."""

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(
            idle_timeout=self.idle_timeout,
            max_connections=self.max_connections,
            max_connections_per_address=self.max_connections_per_address,
        )


class EdgeConfig(Frozen):
    listen: ListenConfig = ListenConfig()
    tls: TlsConfig | None = None
    """Terminate TLS on the listener (HTTPS only); null: plain HTTP."""
    admin: AdminConfig = AdminConfig()
    consul: ConsulSettings = Field(default_factory=ConsulSettings)
    discovery: DiscoverySettings = DiscoverySettings()
    proxy: ProxyConfig = ProxyConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    logging: LoggingConfig = LoggingConfig()
    auth: AuthConfig = AuthConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    registration: EdgeRegistrationConfig = EdgeRegistrationConfig()
    """The edge's own instance in Consul (edges count each other for rate limits)."""
    telemetry: TelemetryConfig = TelemetryConfig()
    cors: CorsConfig | None = None
    """Which web origins browsers may call the edge from (CORS); null: no CORS headers,
    and a preflight goes on like any request."""
    compression: CompressionConfig | None = None
    """Gzip the services' answers for clients that accept it; null: sent as they come."""
    ip_access: IpAccessConfig | None = None
    """Client addresses allowed and denied for the whole edge (403 before routing); null:
    every address. Routes may add their own."""
    headers: HeadersConfig | None = None
    """Header changes to every request sent on and every answer; routes may add their own."""
    mesh_tls: EdgeMeshTlsConfig = EdgeMeshTlsConfig()
    """Mutual TLS to the services' sidecars, with a certificate from Consul Connect."""
    outlier_detection: OutlierDetectionConfig = OutlierDetectionConfig()
    """Eject instances that keep failing the edge's requests (passive health checks)."""
    upstream_limits: UpstreamLimitsConfig = UpstreamLimitsConfig()
    """At most so many requests in flight per service (a bulkhead); off by default."""
    cache: CacheStoreConfig = CacheStoreConfig()
    """The response cache's store, per edge process (routes opt in with their ``cache``)."""
    ext_authz: ExtAuthzConfig | None = None
    """An outside service decides whether each request may pass (Envoy's ext_authz);
    null: none. Routes may opt out (or in)."""
    routes: tuple[RouteConfig, ...] = ()
    consul_routes: bool = True
    """Also expose the routes services declare in their Consul meta."""
    workers: int = Field(default=1, ge=1, le=64)
    """Processes serving the same ports (SO_REUSEPORT); metrics are aggregated over them."""

    @model_validator(mode="after")
    def _mesh_tls_possible(self) -> EdgeConfig:
        problem = mesh_tls_problem(self.mesh_tls, self.discovery.provider, self.proxy.transport)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _workers_need_fixed_ports(self) -> EdgeConfig:
        if self.workers > 1 and (self.listen.port == 0 or self.admin.port == 0):
            raise ValueError("workers > 1 needs fixed listen and admin ports (not 0)")
        return self

    @model_validator(mode="after")
    def _route_auth_possible(self) -> EdgeConfig:
        found = self.auth.routes_problem(route.auth for route in self.routes)
        if found is not None:
            raise ValueError(f"routes[{found[0]}].auth: {found[1]}")
        problem = self.auth.workers_problem(self.workers)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _identity_headers_untouched(self) -> EdgeConfig:
        """No request header change, and no ext_authz header list, names an identity
        header the edge writes (in any case or ``_`` spelling, as the ingress strips them)."""
        identity = self.auth.identity
        managed = header_keys((*identity.headers, identity.token.header))
        changes = [("headers", self.headers)]
        changes += [(f"routes[{i}].headers", r.headers) for i, r in enumerate(self.routes)]
        places: list[tuple[str, Iterable[str]]] = [
            (f"{where}.request", c.request.names()) for where, c in changes if c is not None
        ]
        section = self.ext_authz
        if section is not None:
            places += [
                ("ext_authz.allowed_request_headers", section.allowed_request_headers),
                ("ext_authz.check_headers", section.check_headers),
                ("ext_authz.allowed_upstream_headers", section.allowed_upstream_headers),
            ]
        for where, names in places:
            for name in names:
                if header_key(name) in managed:
                    raise ValueError(
                        f"{where}: {name} is an identity header the edge writes (auth.identity)"
                    )
        return self

    @model_validator(mode="after")
    def _cached_bodies_fit(self) -> EdgeConfig:
        for i, route in enumerate(self.routes):
            if route.cache is not None and route.cache.max_body_size > self.cache.max_bytes:
                raise ValueError(
                    f"routes[{i}].cache.max_body_size: {route.cache.max_body_size} bytes is "
                    f"more than cache.max_bytes ({self.cache.max_bytes}): such a body could "
                    "never be stored"
                )
        return self

    @model_validator(mode="after")
    def _ext_authz_routes_have_a_section(self) -> EdgeConfig:
        if self.ext_authz is None:
            for i, route in enumerate(self.routes):
                if route.ext_authz is not None and not route.ext_authz.disabled:
                    raise ValueError(
                        f"routes[{i}].ext_authz: there is no ext_authz section to check "
                        "with (add one, or remove the key)"
                    )
        return self

    @model_validator(mode="after")
    def _route_policies_exist(self) -> EdgeConfig:
        for i, route in enumerate(self.routes):
            try:
                self.rate_limits.check_names(route.rate_limits or ())
            except ValueError as exc:
                raise ValueError(f"routes[{i}].rate_limits: {exc}") from None
        return self


def load_edge_config(path: str | Path) -> EdgeConfig:
    """Raises mesh.config.errors.ConfigError naming the file, key path and problem."""
    return load_config(path, EdgeConfig)
