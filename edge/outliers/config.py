"""The edge's ``outlier_detection`` section (off by default)."""

from __future__ import annotations

from pydantic import Field

from mesh.config.types import Frozen
from mesh.resilience.breaker_config import BreakerConfig


class OutlierDetectionConfig(Frozen):
    """Instances that keep failing the edge's requests leave the rotation for a while
    (see :mod:`mesh.resilience.outliers`)."""

    enabled: bool = False
    max_ejection_share: float = Field(default=0.5, ge=0, le=1)
    """Never eject more than this share of a service's instances (at least one; every
    instance is called again when none would be left)."""
    breaker: BreakerConfig = BreakerConfig()
    """When an instance is ejected and for how long: the keys and defaults of a sidecar's
    ``resilience.defaults.breaker`` (5 failures in a row, or half of at least 20 calls
    of the last 100; ejected 5 s, doubling per ejection, at most 60 s; 3 trial calls)."""
