"""The edge's ``upstream_limits`` section: requests in flight per service (off by default)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mesh.config.types import Frozen


class UpstreamLimitsConfig(Frozen):
    """Each service may have at most ``max_requests`` requests in flight from one edge
    process (Envoy's cluster ``max_requests``); one more is answered 503 at once, with
    ``Retry-After: 1``. A request is in flight from when it has healthy instances to go
    to until its answer is written to the end (a WebSocket until it closes). Applied by
    :class:`mesh.upstream_limits.UpstreamLimits`, which decides whether any limit is set."""

    max_requests: int | None = Field(default=None, ge=1)
    """Every service's limit; null: none (services listed below keep theirs)."""
    services: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    """Services with a limit of their own, e.g. ``legacy: 50``."""
