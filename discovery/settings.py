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


def _env_file(name: str) -> str | None:
    return os.environ.get(name) or None


def _env_verify() -> bool:
    return os.environ.get("CONSUL_HTTP_SSL_VERIFY", "true").strip().lower() != "false"


class ConsulSettings(Frozen):
    """Where Consul is. Defaults follow Consul's own CLI: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN."""

    address: str = Field(default_factory=_env_addr, validate_default=True)
    """``host:port`` or ``http(s)://host:port``."""
    token: str = Field(default_factory=_env_token, repr=False)
    datacenter: str | None = None
    wait: Duration = 30.0
    """How long one blocking query may wait for a change."""
    ca_file: str | None = Field(default_factory=lambda: _env_file("CONSUL_CACERT"))
    """With ``https://``: the CA (PEM) that signed the agent's certificate, instead of the
    system's CAs (Consul's ``CONSUL_CACERT``)."""
    cert_file: str | None = Field(default_factory=lambda: _env_file("CONSUL_CLIENT_CERT"))
    """With ``https://``: this process's client certificate (PEM), for an agent with
    ``verify_incoming_https`` (Consul's ``CONSUL_CLIENT_CERT``); with ``key_file``."""
    key_file: str | None = Field(default_factory=lambda: _env_file("CONSUL_CLIENT_KEY"))
    """The client certificate's private key (PEM; Consul's ``CONSUL_CLIENT_KEY``)."""
    tls_verify: bool = Field(default_factory=_env_verify)
    """With ``https://``: check the agent's certificate and name (Consul's
    ``CONSUL_HTTP_SSL_VERIFY``). Off only to try things out: anyone on the path could
    then answer for Consul."""

    @field_validator("ca_file", "cert_file", "key_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # ${CONSUL_CACERT:-} in a file gives "": no file.
        return None if value == "" else value

    @model_validator(mode="after")
    def _key_with_cert(self) -> ConsulSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both, or neither")
        return self

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
