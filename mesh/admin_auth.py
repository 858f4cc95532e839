"""Who may use the admin listener: with a token configured, only callers presenting it.

With ``admin.token_file`` or ``admin.token_env`` set (:mod:`mesh.admin_token`),
every admin request must carry ``Authorization: Bearer <token>``, except:

* the probes, ``/healthz`` and ``/readyz``, always: a kubelet's or Consul's
  check cannot send a token, and they tell nothing but alive and ready;
* ``/metrics``, unless ``admin.protect_metrics`` (Prometheus can send the token;
  many setups scrape without one);
* the paths the listener's owner declares open (:attr:`AdminPolicy.open_paths`):
  the sidecar's ``/health/app``, which Consul's check calls with mesh TLS, and
  the edge's ``/identity/jwks.json``, public keys that sidecars fetch to check
  the identity the edge signs;
* requests over a Unix socket: the edge's workers ask one another on sockets in
  a directory only this user can open (:mod:`mesh.admin_workers`), and a
  caller that can open them can read the token file as well. A TCP client
  cannot make its request arrive that way.

Whether a request is open is decided by the route it matched, not by its text,
so no spelling of a path (``//healthz``, ``%2F``) reaches a protected handler
through an open one; a request matching no route needs the token too, so that
the listener does not tell strangers which paths exist.

A refusal is a 401 problem with ``WWW-Authenticate: Bearer realm="meshgate-admin"``
(RFC 6750; ``error="invalid_token"`` for a wrong token), counted in
``meshgate_admin_refusals_total{reason}``: ``missing`` (no Authorization),
``not_bearer`` (another scheme, e.g. Basic) or ``wrong_token``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from mesh.admin_token import AdminToken
from mesh.config.reload import Reload
from mesh.config.sections import AdminConfig
from mesh.http.problem import problem_response

log = logging.getLogger(__name__)

PROBES = frozenset({"/healthz", "/readyz"})
METRICS = "/metrics"
REALM = "meshgate-admin"
REASONS = ("missing", "not_bearer", "wrong_token")
RELOAD_KEYS = ("admin.token_file", "admin.token_env", "admin.protect_metrics")
"""What a reload applies: the token is read again even when its file's path is unchanged
(that is how a rotated token is picked up)."""


@dataclass(frozen=True)
class AdminPolicy:
    """The admin listener's rule: ``token`` (None: every request is let in), whether
    ``/metrics`` needs it, and the paths its owner declares open besides the probes."""

    token: AdminToken | None = None
    protect_metrics: bool = False
    open_paths: frozenset[str] = frozenset()

    def refusal(self, route: str | None, authorization: str | None, internal: bool) -> str | None:
        """Why a request is refused, one of :data:`REASONS`; None when it is let in.

        ``route`` is the path of the route the request matched (None: no route
        matched), ``authorization`` its Authorization header (None: absent), and
        ``internal`` whether it came over a Unix socket (another edge worker)."""
        if self.token is None or internal or self.is_open(route):
            return None
        if authorization is None:
            return "missing"
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return "not_bearer"
        return None if self.token.matches(credentials.strip()) else "wrong_token"

    def is_open(self, route: str | None) -> bool:
        """Whether the route at ``route`` is served without a token."""
        if route is None:
            return False
        if route in PROBES or route in self.open_paths:
            return True
        return route == METRICS and not self.protect_metrics


class HasAdmin(Protocol):
    @property
    def admin(self) -> AdminConfig: ...


class AdminAuth:
    """The admin listener's :class:`AdminPolicy` as configured now: a middleware that
    applies it, and a reload (:mod:`mesh.config.reload`) that replaces it."""

    def __init__(
        self, config: AdminConfig, registry: CollectorRegistry, open_paths: Collection[str] = ()
    ) -> None:
        """``open_paths``: the owner's paths served without a token (see the module
        docstring); the probes are always open."""
        self._open = frozenset(open_paths)
        self.policy = self._policy(config)
        refusals = Counter(
            "meshgate_admin_refusals",
            "Admin requests refused for want of the admin token, by reason: missing (no "
            "Authorization header), not_bearer (another scheme), wrong_token.",
            ["reason"],
            registry=registry,
        )
        self._refusals = {reason: refusals.labels(reason) for reason in REASONS}
        if self.policy.token is not None:
            log.info("admin listener: token from %s", self.policy.token.origin)

    def _policy(self, config: AdminConfig) -> AdminPolicy:
        return AdminPolicy(config.token, config.protect_metrics, self._open)

    def prepare_reload(self, config: HasAdmin) -> Reload:
        """The token and ``protect_metrics`` of ``config`` (read when it was loaded: a
        file that cannot be read has already refused the reload)."""
        policy = self._policy(config.admin)

        def commit() -> None:
            # Said here: the reloader lists changed keys, and a token rotated in place
            # changes none (the file's path is the same).
            if policy.token is None and self.policy.token is not None:
                log.warning("admin listener: no token any more, open to whoever reaches it")
            elif policy.token is not None and policy.token != self.policy.token:
                log.info("admin listener: a new token, from %s", policy.token.origin)
            self.policy = policy

        return Reload(RELOAD_KEYS, commit)

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Let ``request`` through to ``handler`` or answer 401 (see the module docstring)."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        reason = self.policy.refusal(
            route, request.headers.get("Authorization"), _over_unix_socket(request)
        )
        if reason is None:
            return await handler(request)
        self._refusals[reason].inc()
        return _refused(reason)


def _over_unix_socket(request: web.BaseRequest) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def _refused(reason: str) -> web.Response:
    challenge = f'Bearer realm="{REALM}"'
    if reason == "wrong_token":
        challenge += ', error="invalid_token"'
        detail = "the admin token presented is not the right one"
    else:
        detail = "this admin endpoint needs the admin token: Authorization: Bearer <token>"
    return problem_response(
        401,
        "Unauthorized",
        detail,
        None,
        slug="admin-token",
        headers={"WWW-Authenticate": challenge},
    )
