"""The ``canary`` key, of an edge route or of a service a sidecar's app calls
(``resilience``): its schema (see :mod:`mesh.canary`)."""

from __future__ import annotations

from pydantic import Field

from mesh.canary import Canary
from mesh.config.types import Frozen


class CanaryConfig(Frozen):
    """A canary release: see :mod:`mesh.canary`."""

    tag: str = Field(min_length=1)
    """Instances with this Consul tag are the canary (``service.tags`` of their sidecar)."""
    weight: float = Field(ge=0, le=100)
    """Percent of the requests (or calls) sent to the canary."""
    header: str | None = None
    """A request header that picks the side: ``always`` the canary, ``never`` the
    others; null (the default): clients cannot choose."""

    def canary(self) -> Canary:
        return Canary(self.tag, self.weight, self.header)
