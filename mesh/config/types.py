"""Field types shared by the edge and sidecar configuration schemas."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``1.5`` → 1.5 s; ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"`` → seconds.

    Negative values and anything else are errors.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 250ms, 5s or 1m")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a duration must be a finite number")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"expected a duration such as 250ms, 5s or 1m, got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written as a number or with a unit (ms, s, m, h)."""


def _longer_than_zero(value: float) -> float:
    if not value > 0:
        raise ValueError("must be longer than 0")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_longer_than_zero)]
"""A :data:`Duration` that must be longer than 0 (timeouts, intervals, cooldowns)."""

_BYTE_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_BYTE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def parse_byte_size(value: object) -> int:
    """``1048576`` → 1048576; ``"512KiB"``, ``"10MB"``, ``"1GiB"`` → bytes (more than 0)."""
    size: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (m := _BYTE_SIZE.match(value)):
        size = float(m.group(1)) * _BYTE_UNITS[m.group(2)]
    if size is None:
        raise ValueError(f"expected a size such as 512KiB, 10MB or 1048576, got {value!r}")
    if size < 1:
        raise ValueError("a size must be at least 1 byte")
    return int(size)


ByteSize = Annotated[int, BeforeValidator(parse_byte_size)]
"""Bytes, written as a number or with a unit (B, KB, MB, GB; KiB, MiB, GiB)."""

Port = Annotated[int, Field(ge=0, le=65535)]


def _header_name(value: str) -> str:
    from mesh.identity.headers import is_header_name

    if not is_header_name(value):
        raise ValueError(f"{value!r} is not a valid header name")
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]
"""An HTTP field name (an RFC 9110 token), checked when the config loads."""


class Frozen(BaseModel):
    """Base for every configuration section: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Listener(Frozen):
    host: str = "0.0.0.0"
    port: Port


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """``"host:port"`` / ``"host"`` / ``"http://host:port"`` → (host, port)."""
    rest = value.split("://", 1)[-1].rstrip("/")
    if rest.startswith("["):  # [v6]:port
        host, _, port = rest[1:].partition("]")
        return host, int(port.lstrip(":") or default_port)
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, default_port
    if not port.isdigit():
        raise ValueError(f"bad port in {value!r}")
    return host, int(port)


def _redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://")):
        raise ValueError("must start with redis:// or rediss://")
    return value


RedisUrl = Annotated[str, AfterValidator(_redis_url)]
"""``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS)."""
