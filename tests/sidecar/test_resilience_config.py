"""A sidecar's ``max_requests``, ``hash_policy`` and ``canary`` per upstream service
(sidecar/resilience_config.py): the defaults', overridden per service, and what the
guards make of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mesh.canary import Canary
from mesh.config.errors import ConfigError
from mesh.hash_policy import HashPolicy, HashSource
from mesh.resilience.concurrency import ServiceConcurrency
from sidecar.config import load_sidecar_config
from sidecar.guards import GuardRegistry
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


def test_a_services_hash_policy_reaches_its_guard_and_its_view() -> None:
    config = ResilienceConfig.model_validate(
        {"services": {"carts": {"hash_policy": [{"header": "X-User-Id"}, {"source_ip": True}]}}}
    )
    guards = GuardRegistry(config)
    carts = guards.for_service("carts")
    assert carts.hash_policy == HashPolicy(
        (HashSource("header", "X-User-Id"), HashSource("source_ip"))
    )
    assert carts.view()["hash_policy"] == [{"header": "X-User-Id"}, {"source_ip": True}]
    orders = guards.for_service("orders")
    assert orders.hash_policy is None and orders.view()["hash_policy"] is None


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ([], "at least 1 item"),
        ([{"header": "X-A", "cookie": "c"}], "exactly one of header, cookie, query"),
        ([{"header": "bad header"}], "header"),
    ],
)
def test_a_bad_hash_policy_is_refused_naming_the_service(policy: object, problem: str) -> None:
    with pytest.raises(ValidationError, match=r"services\.carts\.hash_policy") as refused:
        ResilienceConfig.model_validate({"services": {"carts": {"hash_policy": policy}}})
    assert problem in str(refused.value)


def test_a_services_canary_reaches_its_guard_and_its_view() -> None:
    config = ResilienceConfig.model_validate(
        {"services": {"carts": {"canary": {"tag": "v2", "weight": 10}}}}
    )
    guards = GuardRegistry(config)
    carts = guards.for_service("carts")
    assert carts.canary == Canary("v2", 10.0, None)
    assert carts.view()["canary"] == {"tag": "v2", "weight": 10.0, "header": None}
    assert guards.for_service("orders").canary is None


@pytest.mark.parametrize(
    ("canary", "key"),
    [
        ({"tag": "v2", "weight": 101}, "weight"),
        ({"tag": "", "weight": 10}, "tag"),
        ({"weight": 10}, "tag"),
    ],
)
def test_a_bad_canary_is_refused_naming_the_key(canary: object, key: str) -> None:
    with pytest.raises(ValidationError, match=rf"services\.carts\.canary\.{key}"):
        ResilienceConfig.model_validate({"services": {"carts": {"canary": canary}}})


@pytest.mark.parametrize(
    ("resilience", "where"),
    [
        ({"defaults": {"retries": {"hedge_on_per_try_timeout": True}}}, "defaults"),
        (
            {"services": {"inventory": {"retries": {"hedge_on_per_try_timeout": True}}}},
            "services.inventory",
        ),
    ],
)
def test_hedging_needs_the_fast_transport(
    tmp_path: Path, resilience: dict[str, Any], where: str
) -> None:
    config = {"service": {"name": "orders"}, "resilience": resilience}
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    load_sidecar_config(path)  # the fast transport, the default: hedging allowed
    path.write_text(yaml.safe_dump({**config, "proxy": {"transport": "aiohttp"}}))
    with pytest.raises(ConfigError) as caught:
        load_sidecar_config(path)
    assert f"resilience.{where}.retries.hedge_on_per_try_timeout needs proxy.transport: fast" in (
        str(caught.value)
    )
    # Without hedging, the aiohttp transport is as welcome as ever.
    path.write_text(
        yaml.safe_dump({"service": {"name": "orders"}, "proxy": {"transport": "aiohttp"}})
    )
    load_sidecar_config(path)
