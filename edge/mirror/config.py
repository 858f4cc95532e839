"""A route's ``mirror`` key: copy a share of its requests to a shadow service."""

from __future__ import annotations

from pydantic import Field

from edge.mirror.policy import MirrorPolicy
from mesh.config.types import ByteSize, Frozen, PositiveDuration


class MirrorConfig(Frozen):
    """``mirror: {service: orders-v2, percent: 10}`` on a route (see :mod:`edge.mirror`)."""

    service: str = Field(min_length=1)
    """The shadow service, found in the catalog like any other."""
    percent: float = Field(default=100, ge=0, le=100)
    """Share of the route's requests copied (Envoy's and Istio's default: all)."""
    max_body_size: ByteSize = 64 * 1024
    """Largest request body copied along, by its declared Content-Length; a longer or
    chunked body is not copied (the request then is not)."""
    timeout: PositiveDuration | None = None
    """Longest a copy may take, counted from its start; null: as long as the request may
    take (the route's ``timeout``, else ``proxy.response_timeout``)."""
    max_in_flight: int = Field(default=100, ge=1)
    """Copies of this route's requests in flight at once per edge process; past it,
    copies are dropped."""

    def policy(self) -> MirrorPolicy:
        return MirrorPolicy(
            self.service, self.percent, self.max_body_size, self.timeout, self.max_in_flight
        )
