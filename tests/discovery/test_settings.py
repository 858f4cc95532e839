"""Consul and discovery settings: CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN defaults, validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from discovery.settings import ConsulSettings, DiscoverySettings
from edge.config import EdgeConfig
from mesh.config.errors import ConfigError
from mesh.config.loader import parse_config
from sidecar.config import SidecarConfig


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)


@pytest.mark.parametrize(
    ("env", "address", "token"),
    [
        pytest.param({}, "127.0.0.1:8500", "", id="no-env"),
        pytest.param({"CONSUL_HTTP_ADDR": "consul:8501"}, "consul:8501", "", id="addr-from-env"),
        pytest.param({"CONSUL_HTTP_ADDR": ""}, "127.0.0.1:8500", "", id="empty-addr-is-default"),
        pytest.param({"CONSUL_HTTP_TOKEN": "s3cret"}, "127.0.0.1:8500", "s3cret", id="token-env"),
        pytest.param(
            {"CONSUL_HTTP_ADDR": "https://consul.example:8501", "CONSUL_HTTP_TOKEN": "t"},
            "https://consul.example:8501",
            "t",
            id="both",
        ),
    ],
)
def test_defaults_follow_consul_cli_env(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], address: str, token: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ConsulSettings()
    assert settings.address == address
    assert settings.token == token


def test_defaults_are_read_when_the_settings_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "first:1")
    assert ConsulSettings().address == "first:1"
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "second:2")
    assert ConsulSettings().address == "second:2"


@pytest.mark.parametrize(
    ("text", "address", "token"),
    [
        pytest.param("consul: {}", "env-consul:8500", "env-token", id="env-when-absent"),
        pytest.param("", "env-consul:8500", "env-token", id="env-when-section-absent"),
        pytest.param(
            "consul: {address: file-consul:9500}",
            "file-consul:9500",
            "env-token",
            id="file-address-wins",
        ),
        pytest.param(
            "consul: {token: file-token}", "env-consul:8500", "file-token", id="file-token-wins"
        ),
        pytest.param("consul: {token: ''}", "env-consul:8500", "", id="explicit-empty-token-wins"),
    ],
)
def test_explicit_file_value_wins_over_env(
    monkeypatch: pytest.MonkeyPatch, text: str, address: str, token: str
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "env-consul:8500")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "env-token")
    edge = parse_config(text, EdgeConfig, env={})
    assert (edge.consul.address, edge.consul.token) == (address, token)
    sidecar = parse_config("service: {name: s}\n" + text, SidecarConfig, env={})
    assert (sidecar.consul.address, sidecar.consul.token) == (address, token)


def test_token_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "very-secret-token")
    assert "very-secret-token" not in repr(ConsulSettings())


@pytest.mark.parametrize(
    ("address", "scheme", "host_port"),
    [
        pytest.param("127.0.0.1:8500", "http", ("127.0.0.1", 8500), id="host-port"),
        pytest.param("consul", "http", ("consul", 8500), id="host-default-port"),
        pytest.param("http://consul:8500", "http", ("consul", 8500), id="http-url"),
        pytest.param("https://consul:8501", "https", ("consul", 8501), id="https-url"),
        pytest.param("https://consul", "https", ("consul", 8500), id="https-default-port"),
        pytest.param("[::1]:8500", "http", ("::1", 8500), id="ipv6"),
    ],
)
def test_scheme_and_host_port(address: str, scheme: str, host_port: tuple[str, int]) -> None:
    settings = ConsulSettings(address=address)
    assert settings.scheme == scheme
    assert settings.host_port == host_port


@pytest.mark.parametrize("address", ["consul:http", "consul:", "http://consul:x"])
def test_bad_address_is_rejected(address: str) -> None:
    with pytest.raises(ValidationError) as info:
        ConsulSettings(address=address)
    assert "expected host:port or http(s)://host:port" in str(info.value)


def test_bad_env_address_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "consul:notaport")
    with pytest.raises(ConfigError) as info:
        parse_config("consul: {}", EdgeConfig, env={})
    assert info.value.key_path == "consul.address"


@pytest.mark.parametrize(
    ("data", "wait"),
    [
        pytest.param({}, 30.0, id="default"),
        pytest.param({"wait": "5m"}, 300.0, id="minutes"),
        pytest.param({"wait": "500ms"}, 0.5, id="milliseconds"),
    ],
)
def test_wait_is_a_duration(data: dict[str, str], wait: float) -> None:
    assert ConsulSettings.model_validate(data).wait == wait


def test_wait_negative_rejected() -> None:
    with pytest.raises(ValidationError, match="cannot be negative"):
        ConsulSettings.model_validate({"wait": -1})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({}, DiscoverySettings(provider="consul"), id="default-consul"),
        pytest.param(
            {"provider": "static", "static_file": "c.yaml", "services": ["a", "b"]},
            DiscoverySettings(provider="static", static_file="c.yaml", services=("a", "b")),
            id="static",
        ),
    ],
)
def test_discovery_settings(data: dict[str, object], expected: DiscoverySettings) -> None:
    assert DiscoverySettings.model_validate(data) == expected


def test_discovery_provider_must_be_known() -> None:
    with pytest.raises(ValidationError):
        DiscoverySettings.model_validate({"provider": "etcd"})
