"""``meshgate edge --check`` and ``meshgate sidecar --check``: would this file start?

As ``nginx -t`` and ``haproxy -c``, for a deploy pipeline or before a SIGHUP.
The file is read and validated as at start (the same loader, the same one-line
messages), and the files it names are read as at start: the TLS certificates and
keys (and the names each is chosen for), the identity token's signing key (edge)
or the edge's public key (sidecar), the static catalog, the CA and client
certificate for Consul over HTTPS, the admin token's file or variable (read by
the loader, as at start); the access log's file is checked for writing without
being created. Nothing is contacted (Consul, Redis, the auth service), no port
is bound and nothing is written: what only a running process can learn (a port
in use, Consul unreachable) is not checked.

Exit 0 with one line on stdout naming the file and what was checked; a problem
exits 2 with the line a start would print (``meshgate.cli`` prints ConfigError).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from discovery.consul_client import check_consul_tls
from discovery.settings import ConsulSettings, DiscoverySettings
from discovery.static_provider import StaticCatalog
from mesh.config.errors import ConfigError
from mesh.config.loader import load_config
from mesh.config.sections import AdminConfig
from mesh.telemetry.access_log import AccessLog
from mesh.telemetry.config import AccessLogConfig

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from sidecar.config import SidecarConfig


def check_edge(config: EdgeConfig, file: str) -> str:
    """What was checked in the edge's ``config`` (read from ``file``); raises ConfigError."""
    from edge.auth.feature import load_identity_signer
    from edge.tls_certificates import load_certificates

    checked = [_count(len(config.routes), "route")]
    problem = config.auth.workers_problem(config.workers)
    if problem is not None:
        raise ConfigError(file, problem)
    if config.tls is not None:
        load_certificates(config.tls)
        pairs = 1 + len(config.tls.certificates)
        checked.append("the TLS certificate and key" if pairs == 1 else f"{pairs} TLS certificates")
    token = config.auth.identity.token
    if token.enabled and token.signing_key_file is not None:
        load_identity_signer(config.auth, time.time)
        checked.append("the identity signing key")
    checked += _shared(config.consul, config.discovery, config.telemetry.access_log, config.admin)
    return _ok("edge", file, checked)


def check_sidecar(config: SidecarConfig, file: str) -> str:
    """What was checked in the sidecar's ``config`` (read from ``file``); raises ConfigError."""
    from sidecar.identity import FileEdgeKeys

    checked = [f"service {config.service.name}"]
    key_file = config.identity.edge_public_key_file
    if key_file is not None:
        FileEdgeKeys(key_file)
        checked.append("the edge's public key")
    checked += _shared(config.consul, config.discovery, config.telemetry.access_log, config.admin)
    return _ok("sidecar", file, checked)


def _shared(
    consul: ConsulSettings,
    discovery: DiscoverySettings,
    access_log: AccessLogConfig,
    admin: AdminConfig,
) -> list[str]:
    checked = []
    if admin.token is not None:  # loading the file read it: it is there, and a valid token
        checked.append("the admin token")
    tls_files = {"CA": consul.ca_file, "client certificate": consul.cert_file}
    named = [name for name, path in tls_files.items() if path is not None]
    if consul.scheme == "https" and named:
        check_consul_tls(consul)
        checked.append(f"Consul's {' and '.join(named)}")
    if discovery.static_file is not None:
        catalog = load_config(discovery.static_file, StaticCatalog)
        checked.append(f"the static catalog ({_count(len(catalog.services), 'service')})")
    if AccessLog.check(access_log):
        checked.append(f"the access log file {access_log.path}")
    return checked


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _ok(role: str, file: str, checked: list[str]) -> str:
    return f"meshgate: {file}: the {role} configuration is valid ({', '.join(checked)})"
