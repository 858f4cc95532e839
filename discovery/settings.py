"""Configuration sections for discovery, shared by the edge and sidecar schemas."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mesh.config.sections import LocalityConfig
from mesh.config.types import Duration, Frozen, split_host_port


def _env_addr() -> str:
    return os.environ.get("CONSUL_HTTP_ADDR") or "127.0.0.1:8500"


def _env_token() -> str:
    return os.environ.get("CONSUL_HTTP_TOKEN", "")


class ConsulSettings(Frozen):
    """Where Consul is. Defaults follow Consul's own CLI: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN."""

    address: str = Field(default_factory=_env_addr, validate_default=True)
    """``host:port`` or ``http(s)://host:port``."""
    token: str = Field(default_factory=_env_token, repr=False)
    datacenter: str | None = None
    wait: Duration = 30.0
    """How long one blocking query may wait for a change."""

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        try:
            split_host_port(value, 8500)
        except ValueError as exc:
            raise ValueError(f"expected host:port or http(s)://host:port ({exc})") from None
        return value

    @property
    def scheme(self) -> str:
        return "https" if self.address.startswith("https://") else "http"

    @property
    def host_port(self) -> tuple[str, int]:
        return split_host_port(self.address, 8500)


class DiscoverySettings(Frozen):
    provider: Literal["consul", "static"] = "consul"
    static_file: str | None = None
    """For ``provider: static``: a YAML file of services and instances, reloaded on change."""
    services: tuple[str, ...] | None = None
    """Only follow these services; by default every service in the catalog."""
    initial_fetch_timeout: Duration = 15.0
    """How long a process waits for its first catalog before it opens the listener that
    routes by it (Envoy's ``initial_fetch_timeout``). Until then the kernel gives new
    connections to the ports' other workers, or refuses them, rather than this process
    answering 503 for services it has not heard of yet. After the timeout it opens
    anyway, with a warning, and answers 503 until the catalog comes. 0: do not wait."""
    locality: LocalityConfig | None = None
    """Where this proxy runs, to prefer instances in its zone (:mod:`mesh.locality`);
    None: every healthy instance alike. Read at start only (a reload does not change it)."""

    @model_validator(mode="after")
    def _static_needs_file(self) -> DiscoverySettings:
        if self.provider == "static" and not self.static_file:
            raise ValueError("static_file is required when provider is static")
        return self
