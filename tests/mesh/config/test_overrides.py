"""Per-service overrides (mesh/config/overrides.py): merged key by key, and refused at
their own key path, through a real file and the sidecar's loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.config.overrides import policy_for
from mesh.resilience.breaker_config import BreakerConfig
from sidecar.config import load_sidecar_config
from tests.edge.refused_config import assert_refused


def test_an_override_replaces_only_the_keys_it_names() -> None:
    defaults = BreakerConfig(min_calls=10, consecutive_failures=3)
    merged = policy_for(defaults, {"consecutive_failures": 7})
    assert (merged.min_calls, merged.consecutive_failures) == (10, 7)
    assert policy_for(defaults, None) is defaults
    assert policy_for(defaults, {}) is defaults


@pytest.mark.parametrize(
    ("override", "key_path", "problem"),
    [
        (
            "{breaker: {min_calls: 0}}",
            "resilience.services.orders.breaker.min_calls",
            "greater than or equal to 1",
        ),
        ("{breaker: {nope: 1}}", "resilience.services.orders.breaker.nope", "unknown key"),
        (
            "{breaker: {min_calls: 500}}",
            "resilience.services.orders.breaker",
            "min_calls (500) exceeds window_size (100)",
        ),
    ],
)
def test_a_bad_override_is_refused_at_its_own_key(
    tmp_path: Path, override: str, key_path: str, problem: str
) -> None:
    text = f"service: {{name: users}}\nresilience: {{services: {{orders: {override}}}}}"
    assert_refused(
        tmp_path,
        text,
        key_path,
        problem,
        load=load_sidecar_config,
    )
