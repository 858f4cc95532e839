"""A sidecar's ``max_requests`` per upstream service (sidecar/resilience_config.py): the
defaults' limit, overridden per service, and what the counts make of it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mesh.resilience.concurrency import ServiceConcurrency
from sidecar.resilience_config import ResilienceConfig


def test_each_overridden_service_gets_its_own_limit_or_the_defaults() -> None:
    config = ResilienceConfig.model_validate(
        {
            "defaults": {"max_requests": 10},
            "services": {
                "inventory": {"max_requests": 3},
                "users": {"breaker": {"min_calls": 5}},  # keeps the defaults' 10
                "legacy": {"max_requests": None},  # no limit for this one
            },
        }
    )
    assert config.max_requests() == {"inventory": 3, "users": 10, "legacy": None}
    counts = ServiceConcurrency(config.defaults.max_requests, config.max_requests())
    assert [counts.limit(s) for s in ("inventory", "users", "legacy", "orders")] == [
        3, 10, None, 10,
    ]  # fmt: skip


def test_off_by_default_and_at_least_one() -> None:
    assert ResilienceConfig().defaults.max_requests is None
    with pytest.raises(ValidationError, match=r"services\.inventory\.max_requests"):
        ResilienceConfig.model_validate({"services": {"inventory": {"max_requests": 0}}})
