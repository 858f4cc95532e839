"""Shared field types: durations, ports, host:port strings, the Frozen base."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mesh.config.types import (
    Duration,
    Frozen,
    Listener,
    Port,
    parse_byte_size,
    parse_duration,
    split_host_port,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("5s", 5.0, id="seconds"),
        pytest.param("2m", 120.0, id="minutes"),
        pytest.param("1h", 3600.0, id="hours"),
        pytest.param("1.5s", 1.5, id="fractional-with-unit"),
        pytest.param("0.5m", 30.0, id="fractional-minutes"),
        pytest.param("10", 10.0, id="string-without-unit-is-seconds"),
        pytest.param("0", 0.0, id="zero-string"),
        pytest.param(" 5 s ", 5.0, id="spaces-around-and-between"),
        pytest.param(3, 3.0, id="int"),
        pytest.param(1.5, 1.5, id="float"),
        pytest.param(0, 0.0, id="zero"),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    out = parse_duration(value)
    assert isinstance(out, float)
    assert out == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message_part"),
    [
        pytest.param(-1, "cannot be negative", id="negative-int"),
        pytest.param(-0.001, "cannot be negative", id="negative-float"),
        pytest.param("-5s", "expected a duration", id="negative-string"),
        pytest.param("5d", "expected a duration", id="unknown-unit"),
        pytest.param("5S", "expected a duration", id="upper-case-unit"),
        pytest.param("5 sec", "expected a duration", id="long-unit-name"),
        pytest.param("1m30s", "expected a duration", id="compound"),
        pytest.param("", "expected a duration", id="empty"),
        pytest.param("ms", "expected a duration", id="unit-only"),
        pytest.param(".5s", "expected a duration", id="no-leading-digit"),
        pytest.param("1e3", "expected a duration", id="exponent"),
        pytest.param(True, "expected a duration", id="bool-true"),
        pytest.param(False, "expected a duration", id="bool-false"),
        pytest.param(None, "expected a duration", id="none"),
        pytest.param([5], "expected a duration", id="list"),
    ],
)
def test_parse_duration_rejects(value: object, message_part: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert message_part in str(info.value)


class _Timeouts(Frozen):
    connect: Duration = 1.0
    port: Port = 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"connect": "250ms"}, 0.25, id="string"),
        pytest.param({"connect": 2}, 2.0, id="number"),
        pytest.param({}, 1.0, id="default"),
    ],
)
def test_duration_field(data: dict[str, object], expected: float) -> None:
    assert _Timeouts.model_validate(data).connect == expected


@pytest.mark.parametrize("port", [-1, 65536])
def test_port_field_range(port: int) -> None:
    with pytest.raises(ValidationError):
        _Timeouts.model_validate({"port": port})


@pytest.mark.parametrize("port", [0, 65535])
def test_port_field_bounds_accepted(port: int) -> None:
    assert _Timeouts.model_validate({"port": port}).port == port


def test_frozen_rejects_unknown_keys_and_assignment() -> None:
    with pytest.raises(ValidationError) as info:
        Listener.model_validate({"port": 1, "hots": "x"})
    assert info.value.errors()[0]["type"] == "extra_forbidden"
    listener = Listener(port=1)
    with pytest.raises(ValidationError):
        listener.port = 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("consul:8500", ("consul", 8500), id="host-port"),
        pytest.param("consul", ("consul", 1234), id="host-only-default-port"),
        pytest.param("http://consul:8501", ("consul", 8501), id="http-url"),
        pytest.param("https://consul.example/", ("consul.example", 1234), id="https-no-port"),
        pytest.param("[::1]:8500", ("::1", 8500), id="ipv6-with-port"),
        pytest.param("[::1]", ("::1", 1234), id="ipv6-without-port"),
        pytest.param("http://[fe80::1]:80/", ("fe80::1", 80), id="ipv6-url"),
    ],
)
def test_split_host_port(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value, 1234) == expected


@pytest.mark.parametrize("value", ["consul:abc", "consul:", "consul:-1"])
def test_split_host_port_rejects_bad_port(value: str) -> None:
    with pytest.raises(ValueError, match="bad port"):
        split_host_port(value, 8500)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        pytest.param(1048576, 1048576, id="int"),
        pytest.param("1048576", 1048576, id="digits"),
        pytest.param("512B", 512, id="bytes"),
        pytest.param("10KB", 10_000, id="kilobytes"),
        pytest.param("10MB", 10_000_000, id="megabytes"),
        pytest.param("1GB", 10**9, id="gigabytes"),
        pytest.param("512KiB", 512 * 1024, id="kibibytes"),
        pytest.param("1.5MiB", 1572864, id="fractional-mebibytes"),
        pytest.param(" 2 GiB ", 2 * 1024**3, id="spaces"),
    ],
)
def test_parse_byte_size(value: object, size: int) -> None:
    assert parse_byte_size(value) == size


@pytest.mark.parametrize(
    ("value", "message_part"),
    [
        pytest.param(0, "at least 1 byte", id="zero"),
        pytest.param(-5, "at least 1 byte", id="negative"),
        pytest.param("0.1B", "at least 1 byte", id="under-a-byte"),
        pytest.param("10mb", "expected a size", id="unit-case-matters"),
        pytest.param("10 TB", "expected a size", id="unknown-unit"),
        pytest.param(True, "expected a size", id="bool"),
        pytest.param(1.5, "expected a size", id="float"),
    ],
)
def test_parse_byte_size_rejects(value: object, message_part: str) -> None:
    with pytest.raises(ValueError, match=message_part):
        parse_byte_size(value)
