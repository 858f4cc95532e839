"""The ``upstream_limits`` section (edge/upstream_limits): its validation, the counts the
proxy is given, reloads that turn it on, off or change it, and its metrics and view."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from edge.config import EdgeConfig
from edge.upstream_limits.limits import EdgeUpstreamLimits as UpstreamLimits
from mesh.balancing import Balancer
from mesh.config.errors import ConfigError
from mesh.config.loader import load_config
from mesh.proxy import Proxy, ProxySettings
from mesh.resilience.concurrency import ServiceConcurrency
from mesh.snapshot import make_snapshot
from mesh.transport.fast import FastTransport


def config(**limits: Any) -> EdgeConfig:
    return EdgeConfig.model_validate({"upstream_limits": limits})


@pytest.mark.parametrize(
    ("limits", "key", "problem"),
    [
        ("{max_requests: 0}", "upstream_limits.max_requests", "greater than or equal to 1"),
        ("{services: {legacy: -1}}", "upstream_limits.services.legacy", "greater than or equal"),
        ("{services: {legacy: {max_requests: 5}}}", "upstream_limits.services.legacy", "integer"),
        ("{max_request: 5}", "upstream_limits.max_request", "unknown key"),
    ],
)
def test_a_bad_section_is_refused_naming_the_key(
    tmp_path: Any, limits: str, key: str, problem: str
) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(f"upstream_limits: {limits}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, EdgeConfig)
    assert f"{path}: {key}: " in str(caught.value)
    assert problem in str(caught.value)


def test_off_by_default_the_proxy_counts_nothing() -> None:
    limits = UpstreamLimits(EdgeConfig().upstream_limits, CollectorRegistry())
    assert limits.concurrency is None
    assert limits.view() == {"enabled": False, "max_requests": None, "services": {}}


def in_use(proxy: Proxy) -> ServiceConcurrency | None:
    """The counts the proxy consults now (read anew, past any earlier narrowing)."""
    return proxy.concurrency


def test_reloads_turn_it_on_change_it_and_turn_it_off_keeping_the_counts() -> None:
    registry = CollectorRegistry()
    limits = UpstreamLimits(EdgeConfig().upstream_limits, registry)
    proxy = Proxy(
        FastTransport(), lambda: make_snapshot({}, "test"), Balancer("round_robin"), ProxySettings()
    )
    limits.serve(proxy)

    reload = limits.prepare_reload(config(max_requests=2, services={"legacy": 1}))
    assert reload is not None and reload.keys == ("upstream_limits",)
    reload.commit()
    counts = limits.concurrency
    assert counts is not None and proxy.concurrency is counts
    assert counts.enter("users") is None and counts.enter("users") is None
    assert counts.enter("users") == 2

    assert limits.prepare_reload(config(max_requests=2, services={"legacy": 1})) is None
    reload = limits.prepare_reload(config(max_requests=3))
    assert reload is not None
    reload.commit()
    assert proxy.concurrency is counts  # the same counts: two still in flight
    assert counts.enter("users") is None and counts.enter("users") == 3
    assert counts.limit("legacy") == 3

    reload = limits.prepare_reload(EdgeConfig())
    assert reload is not None
    reload.commit()
    assert limits.concurrency is None
    assert in_use(proxy) is None
    counts.leave("users")  # a request that entered before still leaves its counts


def test_metrics_show_requests_in_flight_limits_and_refusals() -> None:
    registry = CollectorRegistry()
    limits = UpstreamLimits(config(max_requests=1).upstream_limits, registry)
    counts = limits.concurrency
    assert counts is not None
    counts.enter("users")
    counts.enter("users")
    limits.refresh_metrics()

    def value(name: str, service: str) -> float | None:
        return registry.get_sample_value(name, {"service": service})

    assert value("meshgate_upstream_requests_active", "users") == 1
    assert value("meshgate_upstream_requests_limit", "users") == 1
    assert value("meshgate_upstream_overflow_total", "users") == 1
    assert limits.view()["services"] == {"users": {"limit": 1, "active": 1, "overflows": 1}}
    counts.leave("users")
    limits.refresh_metrics()
    assert value("meshgate_upstream_requests_active", "users") == 0
