"""Per-route authentication policy, resolved from the matched route (pure).

Routes carry their ``auth`` settings as configured (``Route.options["auth"]``);
a route without them gets the default policy. Resolution fills in what the
route left open (methods: every configured one; mode: the global mode) once
per route, so a request costs a dictionary look-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.auth.config import AuthConfig, AuthMethod, AuthPolicy, BearerMode, RouteAuthConfig
from edge.object_memo import ObjectMemo
from edge.routes import Route

_MAX_CACHED = 4096


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What a route requires. ``methods`` is never empty unless ``policy`` is ``none``.

    ``providers``: the names of the JWT providers whose tokens the route accepts;
    None: every configured one.

    The flags after the five fields are derived from them once, at construction,
    because every request reads them.
    """

    policy: AuthPolicy
    methods: frozenset[AuthMethod]
    roles: tuple[str, ...]
    mode: BearerMode
    providers: frozenset[str] | None = None
    enforced: bool = field(init=False, repr=False, compare=False)
    """False for ``none``: the request passes untouched."""
    local_jwt: bool = field(init=False, repr=False, compare=False)
    """Bearer tokens are accepted and verified locally (``jwt`` method, ``jwt`` mode)."""
    api_keys: bool = field(init=False, repr=False, compare=False)
    """API keys are accepted."""

    def __post_init__(self) -> None:
        # Frozen: derived fields are set the way dataclasses set frozen fields.
        object.__setattr__(self, "enforced", self.policy != "none")
        object.__setattr__(self, "local_jwt", "jwt" in self.methods and self.mode == "jwt")
        object.__setattr__(self, "api_keys", "apikey" in self.methods)


class RoutePolicies:
    """Resolves the policy of each route for one auth configuration."""

    def __init__(self, config: AuthConfig) -> None:
        self._config = config
        self.default = self._resolve(config.effective_default_route())
        # Routes are rebuilt per snapshot, so resolved per route object; the
        # memo holds each route, so its id cannot be reused meanwhile.
        self._by_route: ObjectMemo[Route, RoutePolicy] = ObjectMemo(
            lambda route: self.resolve_options(route.options), _MAX_CACHED
        )
        self.known: Callable[[int], RoutePolicy | None] = self._by_route.known
        """``known(id(route))``: the policy of a route resolved before, else None
        (then call :meth:`for_route`); the per-request path, one dict look-up."""

    def for_route(self, route: Route | None) -> RoutePolicy:
        """The policy of ``route`` (the default one for None or a route without ``auth``).

        Raises ValueError if the route's settings are invalid (they were
        validated at load for config routes, so this means a programming error).
        """
        if route is None:
            return self.default
        return self._by_route(route)

    def resolve_options(self, options: Mapping[str, Any]) -> RoutePolicy:
        """The policy for a route's options (``auth`` absent or null: the default)."""
        raw = options.get("auth")
        if raw is None:
            return self.default
        route_config = RouteAuthConfig.model_validate(raw)
        problem = self._config.route_problem(route_config)
        if problem is not None:
            raise ValueError(problem)
        return self._resolve(route_config)

    def _resolve(self, route: RouteAuthConfig) -> RoutePolicy:
        mode = route.mode or self._config.mode
        available = self._config.available_methods(mode)
        methods = frozenset(route.methods) if route.methods is not None else frozenset(available)
        providers = frozenset(route.providers) if route.providers is not None else None
        return RoutePolicy(route.policy, methods, route.roles, mode, providers)
