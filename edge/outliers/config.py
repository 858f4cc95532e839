"""The edge's ``outlier_detection`` section (off by default), with per-service overrides."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from mesh.config.overrides import check_overrides, policy_for
from mesh.config.types import Frozen
from mesh.resilience.breaker_config import BreakerConfig
from mesh.resilience.outliers import OutlierPolicy


class OutlierPolicyConfig(Frozen):
    """How a service's instances are judged: the section's own keys, or a service's
    override merged onto them."""

    enabled: bool = False
    max_ejection_share: float = Field(default=0.5, ge=0, le=1)
    """Never eject more than this share of a service's instances (at least one; every
    instance is called again when none would be left)."""
    breaker: BreakerConfig = BreakerConfig()
    """When an instance is ejected and for how long: the keys and defaults of a sidecar's
    ``resilience.defaults.breaker`` (5 failures in a row, or half of at least 20 calls
    of the last 100; ejected 5 s, doubling per ejection, at most 60 s; 3 trial calls)."""

    def policy(self) -> OutlierPolicy | None:
        """The detector's policy; None when this one is off."""
        if not self.enabled:
            return None
        return OutlierPolicy(self.breaker.settings(), self.max_ejection_share)


class OutlierDetectionConfig(OutlierPolicyConfig):
    """Instances that keep failing the edge's requests leave the rotation for a while
    (see :mod:`mesh.resilience.outliers`). ``enabled`` turns the whole section on."""

    services: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-service overrides of the keys above, merged key by key, e.g. ``legacy:
    {enabled: false}`` (never ejected) or ``orders: {breaker: {consecutive_failures:
    10}}``."""

    @model_validator(mode="after")
    def _validate_overrides(self) -> OutlierDetectionConfig:
        check_overrides(self.defaults(), self.services)
        return self

    def defaults(self) -> OutlierPolicyConfig:
        """The section's own keys, as the policy of a service without an override."""
        return OutlierPolicyConfig.model_validate(self.model_dump(exclude={"services"}))

    def service_policies(self) -> dict[str, OutlierPolicy | None]:
        """Each overridden service's policy (None: that service is never judged)."""
        defaults = self.defaults()
        return {n: policy_for(defaults, o).policy() for n, o in self.services.items()}
