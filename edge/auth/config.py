"""Authentication settings of the edge (global, and per route)."""

from __future__ import annotations

from mesh.config.types import Frozen


class RouteAuthConfig(Frozen):
    """Per-route authentication policy (filled in by the auth feature)."""


class AuthConfig(Frozen):
    """Global authentication settings (filled in by the auth feature)."""
