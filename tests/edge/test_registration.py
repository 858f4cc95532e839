"""The edge's own instance in Consul (edge/registration.py)."""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from edge.registration import EdgeRegistrationConfig, registration_spec


def test_the_spec_checks_readyz_on_the_admin_listener() -> None:
    config = EdgeRegistrationConfig(address="edge", check_interval=0.5)
    spec = registration_spec(config, listen_port=8080, admin_port=9901)
    assert spec.name == "meshgate-edge"
    assert spec.service_id == f"meshgate-edge-{socket.gethostname()}-8080"
    assert (spec.address, spec.port) == ("edge", 8080)
    assert spec.check_url == "http://edge:9901/readyz"
    assert spec.check()["interval"] == "500ms"


def test_edges_on_one_host_get_distinct_ids() -> None:
    config = EdgeRegistrationConfig()
    a = registration_spec(config, listen_port=8080, admin_port=9901)
    b = registration_spec(config, listen_port=8081, admin_port=9902)
    assert a.service_id != b.service_id


def test_blank_names_are_refused() -> None:
    with pytest.raises(ValidationError):
        EdgeRegistrationConfig(name=" ")
