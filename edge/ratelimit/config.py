"""Rate-limit settings of the edge: Redis, named policies, defaults."""

from __future__ import annotations

from mesh.config.types import Frozen


class RateLimitsConfig(Frozen):
    """Global rate-limit settings (filled in by the rate-limit feature)."""
