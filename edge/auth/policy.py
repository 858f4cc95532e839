"""Per-route authentication policy, resolved from the matched route (pure).

Routes carry their ``auth`` settings as configured (``Route.options["auth"]``);
a route without them gets the default policy. Resolution fills in what the
route left open (methods: every configured one; mode: the global mode) once
per route, so a request costs a dictionary look-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.auth.config import AuthConfig, AuthMethod, AuthPolicy, BearerMode, RouteAuthConfig
from edge.routes import Route

_MAX_CACHED = 4096


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What a route requires. ``methods`` is never empty unless ``policy`` is ``none``."""

    policy: AuthPolicy
    methods: frozenset[AuthMethod]
    roles: tuple[str, ...]
    mode: BearerMode

    @property
    def enforced(self) -> bool:
        """False for ``none``: the request passes untouched."""
        return self.policy != "none"


class RoutePolicies:
    """Resolves the policy of each route for one auth configuration."""

    def __init__(self, config: AuthConfig) -> None:
        self._config = config
        self.default = self._resolve(config.effective_default_route())
        # Keyed by id(route), holding the route so the id cannot be reused meanwhile.
        self._by_route: dict[int, tuple[Route, RoutePolicy]] = {}

    def for_route(self, route: Route | None) -> RoutePolicy:
        """The policy of ``route`` (the default one for None or a route without ``auth``).

        Raises ValueError if the route's settings are invalid (they were
        validated at load for config routes, so this means a programming error).
        """
        if route is None:
            return self.default
        cached = self._by_route.get(id(route))
        if cached is not None and cached[0] is route:
            return cached[1]
        policy = self.resolve_options(route.options)
        if len(self._by_route) >= _MAX_CACHED:
            self._by_route.clear()  # routes are rebuilt per snapshot; old ones go
        self._by_route[id(route)] = (route, policy)
        return policy

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
        return RoutePolicy(route.policy, methods, route.roles, mode)
