"""The shared ``discovery.locality`` section: its defaults, overrides and refusals."""

from __future__ import annotations

import pytest

from edge.config import EdgeConfig
from mesh.config.errors import ConfigError
from mesh.config.loader import parse_config
from mesh.config.sections import LocalityConfig
from mesh.locality import LocalityPolicy
from sidecar.config import SidecarConfig

SIDECAR_BASE = "service: {name: users}\n"


def test_locality_is_off_unless_configured() -> None:
    assert parse_config("{}", EdgeConfig, env={}).discovery.locality is None


def test_edge_locality() -> None:
    text = """
discovery:
  locality:
    zone: eu-west-1a
    region: eu-west-1
    min_healthy: 2
    min_share: 0.25
    services:
      billing: {enabled: false}
      users: {min_healthy: 1}
"""
    locality = parse_config(text, EdgeConfig, env={}).discovery.locality
    assert locality is not None
    assert locality.default_policy() == LocalityPolicy("eu-west-1a", "eu-west-1", 2, 0.25)
    assert locality.service_policies() == {
        "billing": None,
        "users": LocalityPolicy("eu-west-1a", "eu-west-1", 1, 0.25),
    }


def test_sidecar_takes_the_same_section() -> None:
    text = SIDECAR_BASE + "discovery: {locality: {zone: z1}}\n"
    locality = parse_config(text, SidecarConfig, env={}).discovery.locality
    assert locality is not None and locality.default_policy() == LocalityPolicy("z1")


@pytest.mark.parametrize(
    ("locality", "key_path"),
    [
        pytest.param("{region: r1}", "discovery.locality.zone", id="zone-required"),
        pytest.param("{zone: ''}", "discovery.locality.zone", id="zone-empty"),
        pytest.param("{zone: z, min_healthy: 0}", "discovery.locality.min_healthy", id="min0"),
        pytest.param("{zone: z, min_share: 1.5}", "discovery.locality.min_share", id="share"),
        pytest.param("{zone: z, zones: [a]}", "discovery.locality.zones", id="unknown-key"),
        pytest.param(
            "{zone: z, services: {users: {min_share: -1}}}",
            "discovery.locality.services.users.min_share",
            id="override-located",
        ),
        pytest.param(
            "{zone: z, services: {users: {zone: other}}}",
            "discovery.locality.services.users.zone",
            id="override-cannot-move-the-proxy",
        ),
    ],
)
def test_locality_refusals(locality: str, key_path: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"discovery: {{locality: {locality}}}", EdgeConfig, env={})
    assert info.value.key_path == key_path


def test_router_is_none_when_every_service_is_off() -> None:
    off = LocalityConfig(zone="z", enabled=False, services={"users": {"enabled": False}})
    assert off.router() is None
    one_on = LocalityConfig(zone="z", enabled=False, services={"users": {"enabled": True}})
    assert one_on.router() is not None
    assert LocalityConfig(zone="z").router() is not None
