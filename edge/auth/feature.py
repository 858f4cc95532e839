"""The auth feature of the edge: wires the verification core into the pipeline.

- before routing, on every request: :class:`edge.filters.strip_identity.StripIdentityFilter`;
- after routing, when any method is configured:
  :class:`edge.filters.authenticate.AuthenticateFilter`, then
  :class:`edge.filters.identity_headers.IdentityHeadersFilter`, then (unless
  disabled) :class:`edge.filters.identity_token.IdentityTokenFilter`;
- admin views: ``/auth`` (keys, caches, counters) and ``/identity/jwks.json``
  (the public key sidecars check the identity token with, open without the admin
  token: :meth:`AuthFeature.open_admin_paths`);
- ``start``: HTTP session; per JWT provider (:meth:`AuthConfig.jwt_providers`) a
  JWKS cache and verifier (several behind an
  :class:`edge.auth.issuer_router.IssuerRouter`); introspection client, Redis
  for API keys, and a first fetch of each JWKS in the background once the
  catalog is loaded (counted in ``meshgate_jwks_refreshes_total{provider,outcome}``)
  (and, when the JWKS comes through mesh TLS, the edge's certificate is in;
  retried until it succeeds);
  ``stop`` closes them.

The auth service's endpoints come from ``url`` (fetched with aiohttp) or from
``service`` (found in the catalog): with the edge's mesh TLS on, a service is
called through the edge's own transport (:class:`edge.auth.service_url.ServiceCall`),
over mutual TLS to Connect-native instances, their certificate checked before
anything is sent; otherwise with aiohttp over plain HTTP.

The identity signing key is read (or generated) at construction, so a bad key
file stops the edge at start with a ConfigError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from edge.auth.apikey_verifier import ApiKeyVerifier
from edge.auth.apikeys import ApiKeyStore
from edge.auth.authenticator import Authenticator, Verifiers
from edge.auth.config import AuthConfig, JwtProvider
from edge.auth.identity import IdentityHeaders
from edge.auth.introspection import IntrospectionSettings, IntrospectionVerifier
from edge.auth.introspection_http import HttpIntrospector
from edge.auth.issuer_router import IssuerRouter
from edge.auth.jwks import JwksCache, JwksCacheSettings
from edge.auth.jwks_http import HttpJwksFetcher
from edge.auth.jwt_verifier import JwtSettings, JwtVerifier
from edge.auth.policy import RoutePolicies, RoutePolicy
from edge.auth.service_url import ServiceCall, ServiceUrl
from edge.config import EdgeConfig
from edge.feature import BaseFeature, EdgeContext, JsonView
from edge.filters.authenticate import AuthenticateFilter
from edge.filters.identity_headers import IdentityHeadersFilter
from edge.filters.identity_token import IdentityTokenFilter
from edge.filters.strip_identity import StripIdentityFilter
from mesh.chain import Filter
from mesh.config.errors import ConfigError
from mesh.config.reload import Reload, ReloadRefused
from mesh.identity.keys import IdentityKeyError, generate_signing_key, load_signing_key
from mesh.identity.token import IdentitySigner
from mesh.mtls.contexts import MeshTls
from mesh.telemetry.metrics import RefreshMetrics

log = logging.getLogger(__name__)

FIRST_FETCH_MAX_DELAY_S = 5.0
JWKS_PATH = "/identity/jwks.json"
"""Where the admin listener publishes the identity token's public keys."""


def load_identity_signer(config: AuthConfig, clock: Callable[[], float]) -> IdentitySigner:
    """The identity token signer: the key file's key, or a new one (logged with its kid).

    Raises ConfigError naming the file when it cannot be read or used.
    """
    token = config.identity.token
    if token.signing_key_file is None:
        key = generate_signing_key(token.algorithm)
    else:
        path = token.signing_key_file
        try:
            key = load_signing_key(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(
                path, f"cannot read the identity signing key: {exc.strerror}"
            ) from None
        except IdentityKeyError as exc:
            raise ConfigError(path, f"identity signing key: {exc}") from None
    signer = IdentitySigner(key, issuer=token.issuer, lifetime_s=int(token.lifetime), clock=clock)
    origin = token.signing_key_file or "generated at start"
    log.info("identity token key %s (%s, %s)", signer.kid, signer.algorithm, origin)
    return signer


class AuthFeature(BaseFeature):
    """Edge authentication; see the module docstring for what it contributes."""

    name = "auth"

    def __init__(
        self,
        config: AuthConfig,
        ctx: EdgeContext,
        clock: Callable[[], float] = time.time,
        *,
        workers: int = 1,
    ) -> None:
        problem = config.workers_problem(workers)
        if problem is not None:  # e.g. --workers given on the command line
            raise ConfigError("the edge configuration", problem)
        self._config = config
        self._ctx = ctx
        self._clock = clock
        identity = config.identity
        self._managed = (*identity.headers, identity.token.header)
        self._policies = RoutePolicies(config)
        self._authenticator = Authenticator()
        self._header_map = IdentityHeaders(identity.claims)
        self.signer = load_identity_signer(config, clock) if identity.token.enabled else None
        self._session: aiohttp.ClientSession | None = None
        self._redis: Redis | None = None
        self.jwks: JwksCache | None = None
        """The first provider's key set (``default``'s when the top-level jwks is set)."""
        self._providers: dict[str, _ProviderState] = {}
        self.jwt: JwtVerifier | IssuerRouter | None = None
        """One provider's verifier, or with several the router over theirs."""
        self.introspection: IntrospectionVerifier | None = None
        self.api_keys: ApiKeyVerifier | None = None
        self._warm: list[asyncio.Task[None]] = []
        self._jwks_metrics: RefreshMetrics | None = None

    # -- the pipeline ------------------------------------------------------------

    def before_routing(self) -> list[Filter]:
        return [StripIdentityFilter(self._managed)]

    def after_routing(self) -> list[Filter]:
        if not self._config.any_method:
            return []  # no route can require or accept credentials
        return [
            AuthenticateFilter(
                self._policies,
                self._authenticator,
                realm=self._config.realm,
                forward_credentials=self._config.forward_credentials,
            )
        ]

    def before_proxy(self) -> list[Filter]:
        # Last, so that a request refused later (say by a rate limit) never pays
        # for the headers and the signature.
        if not self._config.any_method:
            return []
        filters: list[Filter] = [IdentityHeadersFilter(self._header_map)]
        if self.signer is not None:
            filters.append(IdentityTokenFilter(self.signer, self._config.identity.token.header))
        return filters

    def strip_headers(self) -> set[str]:
        return {name.lower() for name in self._managed}

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """Applies nothing (the ``auth`` section waits for a restart), but refuses a file
        whose routes need an authentication method the running edge lacks: loaded, such a
        route would fail every request rather than check it."""
        found = self._config.routes_problem(route.auth for route in config.routes)
        if found is not None:
            raise ReloadRefused(
                f"routes[{found[0]}].auth",
                f"{found[1]} in the auth settings the edge started with "
                "(auth changes take effect at the next restart)",
            )
        return None

    def admin_views(self) -> Mapping[str, JsonView]:
        views: dict[str, JsonView] = {"/auth": self.view}
        signer = self.signer
        if signer is not None:
            views[JWKS_PATH] = signer.jwks
        return views

    def open_admin_paths(self) -> set[str]:
        # Public keys, which sidecars fetch (identity.edge_jwks_url) without the admin token.
        return {JWKS_PATH} if self.signer is not None else set()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        config = self._config
        self._session = aiohttp.ClientSession()
        verifiers: dict[str, JwtVerifier] = {}
        providers = config.jwt_providers()
        if providers:
            self._jwks_metrics = RefreshMetrics(self._ctx.registry, "jwks", ("provider",))
        for provider in providers.values():
            verifiers[provider.issuer] = self._start_provider(provider)
        if len(verifiers) == 1:
            # One provider verifies exactly as before providers existed (no iss routing).
            (self.jwt,) = verifiers.values()
        elif verifiers:
            self.jwt = IssuerRouter(verifiers, config.max_token_bytes)
        if config.introspection.configured:
            i = config.introspection
            call = HttpIntrospector(
                self._url_source(i.url, i.service, i.path),
                self._session,
                client_id=i.client_id,
                client_secret=i.client_secret,
                timeout_s=i.timeout,
            )
            self.introspection = IntrospectionVerifier(
                IntrospectionSettings(
                    issuer=config.issuer,
                    audience=config.audience,
                    max_ttl_s=i.max_ttl,
                    negative_ttl_s=i.negative_ttl,
                    cache_max_entries=config.cache_max_entries,
                    max_token_bytes=config.max_token_bytes,
                ),
                call,
                self._clock,
            )
        if config.api_keys.enabled:
            k = config.api_keys
            assert k.redis_url is not None
            self._redis = Redis.from_url(
                k.redis_url, socket_timeout=k.timeout, socket_connect_timeout=k.timeout
            )
            store = ApiKeyStore(self._redis, k.key_prefix)
            self.api_keys = ApiKeyVerifier(
                store.lookup,
                self._clock,
                cache_ttl_s=k.cache_ttl,
                max_entries=config.cache_max_entries,
                timeout_s=k.timeout,
            )
        self._authenticator.install(Verifiers(self.jwt, self.introspection, self.api_keys))

    def _start_provider(self, provider: JwtProvider) -> JwtVerifier:
        """The verifier of ``provider`` over its own JWKS cache, whose first fetch
        starts in the background."""
        assert self._session is not None
        jwks = provider.jwks
        url = self._url_source(jwks.url, jwks.service, jwks.path)
        fetcher = HttpJwksFetcher(url, self._session, timeout_s=jwks.fetch_timeout)
        mesh_tls = url.mesh_tls if isinstance(url, ServiceCall) else None
        cache = JwksCache(
            fetcher,
            self._clock,
            JwksCacheSettings(
                cooldown_s=jwks.cooldown,
                default_max_age_s=jwks.default_max_age,
                max_stale_s=jwks.max_stale,
                fetch_timeout_s=jwks.fetch_timeout,
            ),
            on_fetch=self._jwks_metrics.recorder(provider.name) if self._jwks_metrics else None,
        )
        verifier = JwtVerifier(
            JwtSettings(
                issuer=provider.issuer,
                audience=provider.audience,
                algorithms=frozenset(provider.algorithms),
                leeway_s=provider.leeway,
                max_token_bytes=self._config.max_token_bytes,
                cache_max_entries=self._config.cache_max_entries,
                provider=provider.name,
            ),
            cache,
            self._clock,
        )
        self._providers[provider.name] = _ProviderState(
            provider.issuer, cache, url if isinstance(url, str) else url.describe(), verifier
        )
        if self.jwks is None:
            self.jwks = cache
        loop = asyncio.get_running_loop()
        self._warm.append(loop.create_task(self._first_fetch(cache, mesh_tls)))
        return verifier

    async def stop(self) -> None:
        for task in self._warm:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for state in self._providers.values():
            await state.jwks.aclose()
        if self._session is not None:
            await self._session.close()
        if self._redis is not None:
            await self._redis.aclose()

    def _url_source(
        self, url: str | None, service: str | None, path: str
    ) -> str | ServiceUrl | ServiceCall:
        """``url`` as it is (aiohttp); ``service`` through the edge's transport when the
        edge has mesh TLS on, else as a URL found in the catalog (aiohttp)."""
        if url is not None:
            return url
        assert service is not None  # validated: one of the two is set
        ctx = self._ctx
        endpoint = ServiceUrl(lambda: self._ctx.store.current, service, path)
        if ctx.mesh_tls is not None and ctx.transport is not None:
            return ServiceCall(endpoint, ctx.transport, ctx.mesh_tls)
        return endpoint

    async def _first_fetch(self, jwks: JwksCache, mesh_tls: MeshTls | None = None) -> None:
        """Fetch the key set once the catalog is loaded (and ``mesh_tls``, through which
        it is fetched, has its certificate), retrying until it succeeds.

        Requests never wait for this; until it succeeds they get 503 (no keys),
        and the auth service may well start after the edge.
        """
        await self._ctx.store.ready.wait()
        if mesh_tls is not None:
            await mesh_tls.ready.wait()
        delay = 0.25
        while not await jwks.refresh():
            log.warning("JWKS fetch failed (retrying in %.1fs): %s", delay, jwks.stats().last_error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, FIRST_FETCH_MAX_DELAY_S)

    # -- admin -------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The ``/auth`` admin view: methods, key set state, caches and counters."""
        config = self._config
        out: dict[str, Any] = {
            "mode": config.mode,
            "methods": list(config.available_methods()),
            "default_route": _describe_policy(self._policies.default),
            "managed_headers": list(self._managed),
        }
        first = next(iter(self._providers.values()), None)
        if first is not None:
            out["jwks"] = {"source": first.source, **asdict(first.jwks.stats())}
        if self.jwt is not None:
            out["jwt"] = asdict(self.jwt.stats())
        if self._providers:
            out["providers"] = {
                name: {
                    "issuer": state.issuer,
                    "jwks": {"source": state.source, **asdict(state.jwks.stats())},
                    "jwt": asdict(state.verifier.stats()),
                }
                for name, state in self._providers.items()
            }
        if self.introspection is not None:
            out["introspection"] = asdict(self.introspection.stats())
        if self.api_keys is not None:
            out["api_keys"] = {
                "cache_ttl_s": config.api_keys.cache_ttl,
                **asdict(self.api_keys.stats()),
            }
        signer = self.signer
        out["identity_token"] = (
            {"header": config.identity.token.header, "kid": signer.kid, "alg": signer.algorithm}
            if signer is not None
            else None
        )
        return out


@dataclass(frozen=True, slots=True)
class _ProviderState:
    """What runs for one JWT provider: its key set (and where from) and verifier."""

    issuer: str
    jwks: JwksCache
    source: str
    verifier: JwtVerifier


def _describe_policy(policy: RoutePolicy) -> dict[str, Any]:
    return {
        "policy": policy.policy,
        "methods": sorted(policy.methods),
        "roles": list(policy.roles),
        "mode": policy.mode,
        "providers": sorted(policy.providers) if policy.providers is not None else None,
    }
