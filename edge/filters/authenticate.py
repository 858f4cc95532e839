"""Authenticate the caller per the matched route's policy (after routing).

Reads the route from ``ex.attrs["route"]``, the credential from the request;
on success leaves the :class:`edge.auth.identity.Identity` in
``ex.attrs["identity"]`` (absent for an anonymous caller) and, unless
configured to forward them, removes the credential headers from what goes
upstream. Refusals are RFC 6750 challenges with problem bodies; a credential
that cannot be checked right now (keys, introspection or key store
unavailable) is a 503 with Retry-After, never a 401.

A repeat caller (its token or key answer still cached) is decided without
awaiting anything or building a Credential: see :meth:`Authenticator.cached`.
Everything else takes the full path, which makes every decision, errors
included, exactly as if the quick one did not exist.

When the identity-headers filter comes right after it in the chain, the edge
runs both as one level (:meth:`AuthenticateFilter.fuse_next`): the same work in
the same order, without a chain level, a look-up of the identity and a call
per request between them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from aiohttp import web

from edge.auth.authenticator import UNAVAILABLE, Authenticator
from edge.auth.challenge import challenges, title
from edge.auth.credentials import (
    API_KEY_KEY,
    API_KEY_SCHEME,
    AUTHORIZATION_KEY,
    Credential,
    CredentialKind,
    presented_credential,
)
from edge.auth.errors import AuthError
from edge.auth.policy import RoutePolicies, RoutePolicy
from edge.filters.identity_headers import IdentityHeadersFilter
from mesh.chain import Filter, Handler, answered
from mesh.exchange import Exchange

log = logging.getLogger(__name__)

IDENTITY_ATTR = "identity"
"""``ex.attrs`` key of the caller's Identity (set only for authenticated callers)."""

RETRY_AFTER_S = 5


class AuthenticateFilter:
    """Authenticates per the route's policy; see the module docstring.

    With ``identity_headers`` (see :meth:`fuse_next`) it is that filter too:
    after deciding, it does exactly what ``identity_headers`` would do as the
    next filter in the chain, before calling ``next_handler``.
    """

    def __init__(
        self,
        policies: RoutePolicies,
        authenticator: Authenticator,
        *,
        realm: str,
        forward_credentials: bool = False,
        identity_headers: IdentityHeadersFilter | None = None,
    ) -> None:
        self._policies = policies
        self._policy_of = policies.known
        self._authenticator = authenticator
        self._realm = realm
        self._forward = forward_credentials
        self._identity_headers = identity_headers

    def fuse_next(self, following: Filter) -> AuthenticateFilter | None:
        """This filter and ``following`` as one, when ``following`` is the
        identity-headers filter (else None: they stay two levels).

        Only for filters adjacent in the chain: a filter between them (a rate
        limit counting by ``X-User-Id``, say) must see the request after
        authentication but before the identity headers are set.
        """
        if self._identity_headers is not None or not isinstance(following, IdentityHeadersFilter):
            return None
        return AuthenticateFilter(
            self._policies,
            self._authenticator,
            realm=self._realm,
            forward_credentials=self._forward,
            identity_headers=following,
        )

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        # A plain def (see mesh.chain.Filter): a pass-through or a cached caller
        # hands back the next handler's awaitable, with no coroutine of its own;
        # only the full path (verification may await) is a coroutine.
        route = ex.attrs.get("route")
        policy = self._policy_of(id(route)) or self._policies.for_route(route)
        if not policy.enforced:
            return self._then(ex, next_handler)
        headers = ex.request.headers
        try:
            known = self._authenticator.cached(headers, policy)
        except AuthError as error:  # a cached caller without any of the route's roles
            # Exactly the credential cached() decided on (its contract), so
            # presented_credential cannot raise here.
            presented = presented_credential(headers)
            kind = presented.kind if presented is not None else None
            return answered(self._refuse(ex, error, kind, policy))
        if known is not None:
            attrs = ex.attrs
            attrs[IDENTITY_ATTR] = known
            upstream = ex.upstream_headers
            if not self._forward:
                if known.method == "jwt":
                    # A bearer token, the one Authorization header (what
                    # _remove_credential does for one, inline; del costs half
                    # of popall, which builds a list; a try costs nothing in
                    # 3.11, contextlib.suppress does).
                    try:  # noqa: SIM105
                        del upstream[AUTHORIZATION_KEY]
                    except KeyError:
                        pass  # listed in Connection: the ingress dropped it
                else:
                    # An API key in one of its plain forms, alone (cached()'s
                    # contract): X-API-Key with no Authorization, or
                    # "Authorization: ApiKey" with no X-API-Key. The upstream
                    # headers are the request's less what the ingress dropped,
                    # so removing whichever of the two is there is exactly what
                    # _remove_credential does, without its popall lists and
                    # scheme parsing.
                    try:
                        del upstream[API_KEY_KEY]
                    except KeyError:
                        try:  # noqa: SIM105
                            del upstream[AUTHORIZATION_KEY]
                        except KeyError:
                            pass  # listed in Connection: the ingress dropped it
            identity_headers = self._identity_headers
            if identity_headers is not None:
                # What identity_headers(ex, next_handler) does, without its chain level:
                # the point of fusing the two.
                identity_headers.set_for(ex, known)
            return next_handler(ex)
        return self._authenticate(ex, next_handler, policy)

    def _then(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        """What comes after the decision: the identity headers when fused, then ``next_handler``."""
        identity_headers = self._identity_headers
        if identity_headers is None:
            return next_handler(ex)
        return identity_headers(ex, next_handler)

    async def _authenticate(
        self, ex: Exchange, next_handler: Handler, policy: RoutePolicy
    ) -> web.StreamResponse:
        """The full path: every decision, errors included, for any request."""
        credential: Credential | None = None
        try:
            credential = presented_credential(ex.request.headers)
            identity = await self._authenticator.authenticate(credential, policy)
        except AuthError as error:
            presented = credential.kind if credential is not None else None
            return self._refuse(ex, error, presented, policy)
        except UNAVAILABLE as exc:
            log.warning("cannot authenticate request %s now: %s", ex.request_id, exc)
            return ex.problem(
                503,
                "Authentication unavailable",
                "credentials cannot be checked right now; try again shortly",
                slug="auth-unavailable",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if identity is not None:
            ex.attrs[IDENTITY_ATTR] = identity
            if not self._forward and credential is not None:
                self._remove_credential(ex, credential.kind)
        return await self._then(ex, next_handler)

    def _refuse(
        self,
        ex: Exchange,
        error: AuthError,
        presented: CredentialKind | None,
        policy: RoutePolicy,
    ) -> web.Response:
        headers = challenges(
            error,
            presented=presented,
            accepted_methods=policy.methods,
            realm=self._realm,
        )
        return ex.problem(
            error.status,
            title(error),
            error.description,
            slug=error.code or "unauthorized",
            extra=error.body(),
            headers=headers,
        )

    @staticmethod
    def _remove_credential(ex: Exchange, kind: CredentialKind) -> None:
        headers = ex.upstream_headers
        if kind == "apikey":
            headers.popall(API_KEY_KEY, None)
            authorization = headers.get(AUTHORIZATION_KEY)
            if authorization is None:
                return  # the key came as X-API-Key, the usual way
            scheme = authorization.strip().partition(" ")[0]
            if scheme.lower() != API_KEY_SCHEME:
                return  # another scheme (e.g. Basic for the service) is not ours to remove
        headers.popall(AUTHORIZATION_KEY, None)
