"""The edge's ``outlier_detection`` section: defaults, and what it refuses, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_edge_config
from tests.edge.refused_config import assert_refused


@pytest.mark.parametrize(
    ("text", "key_path", "problem"),
    [
        (
            "outlier_detection: {max_ejection_share: 1.5}",
            "outlier_detection.max_ejection_share",
            "less than or equal to 1",
        ),
        (
            "outlier_detection: {breaker: {consecutive_failures: 0}}",
            "outlier_detection.breaker.consecutive_failures",
            "greater than or equal to 1",
        ),
        (
            "outlier_detection: {breaker: {min_calls: 200}}",
            "outlier_detection.breaker",
            "min_calls (200) exceeds window_size (100)",
        ),
        (
            "outlier_detection: {breaker: {failure_statuses: [700]}}",
            "outlier_detection.breaker",
            "failure_statuses",
        ),
        ("outlier_detection: {eject: true}", "outlier_detection.eject", "unknown key"),
        (
            "outlier_detection: {services: {orders: {breaker: {min_calls: 0}}}}",
            "outlier_detection.services.orders.breaker.min_calls",
            "greater than or equal to 1",
        ),
        (
            "outlier_detection: {services: {orders: {max_ejection_share: -1}}}",
            "outlier_detection.services.orders.max_ejection_share",
            "greater than or equal to 0",
        ),
        (
            "outlier_detection: {services: {orders: {services: {}}}}",
            "outlier_detection.services.orders.services",
            "unknown key",
        ),
    ],
)
def test_refused(tmp_path: Path, text: str, key_path: str, problem: str) -> None:
    assert_refused(tmp_path, text, key_path, problem)


def test_off_by_default_with_a_sidecar_breakers_defaults(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("listen: {port: 8080}\n")
    section = load_edge_config(path).outlier_detection
    assert section.enabled is False
    settings = section.breaker.settings()
    assert (settings.consecutive_failures, settings.open_base_s, settings.open_max_s) == (5, 5, 60)
    assert section.max_ejection_share == 0.5


def test_services_override_the_section_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        "outlier_detection:\n"
        "  enabled: true\n"
        "  breaker: {consecutive_failures: 3, open_base: 2s}\n"
        "  services:\n"
        "    orders: {breaker: {consecutive_failures: 10}, max_ejection_share: 0.25}\n"
        "    legacy: {enabled: false}\n"
    )
    section = load_edge_config(path).outlier_detection
    policies = section.service_policies()
    assert policies["legacy"] is None
    orders = policies["orders"]
    assert orders is not None and orders.max_ejection_share == 0.25
    # The override's own key, and the section's for the rest.
    assert (orders.breaker.consecutive_failures, orders.breaker.open_base_s) == (10, 2)
    defaults = section.defaults().policy()
    assert defaults is not None and defaults.breaker.consecutive_failures == 3
