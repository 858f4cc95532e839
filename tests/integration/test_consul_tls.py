"""Consul over HTTPS: a real Consul agent whose HTTPS API requires a client certificate
(``verify_incoming_https``), a sidecar registering through it, an edge following the
catalog through it; and what happens without the right CA or certificate.

Certificates come from trustme: the agent's names ``127.0.0.1`` (the address the
processes use), the client's is signed by the same CA.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from demo.processes import ConsulAgent, free_port, wait_until
from tests.integration.harness import Mesh, consul_api, http

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}


@dataclass
class TlsConsul:
    agent: ConsulAgent
    address: str
    files: dict[str, str]
    """ca_file, cert_file, key_file: what a process needs to reach the HTTPS API."""


@pytest.fixture
def tls_consul(tmp_path: Path) -> Iterator[TlsConsul]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("meshgate-client")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "server", "server-key")}
    paths |= {name: tmp_path / f"{name}.pem" for name in ("client", "client-key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["server"]))
    server.private_key_pem.write_to_path(str(paths["server-key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client"]))
    client.private_key_pem.write_to_path(str(paths["client-key"]))
    https = free_port()
    agent = ConsulAgent(
        https_port=https,
        extra_config=(
            f'ca_file = "{paths["ca"]}"\n'
            f'cert_file = "{paths["server"]}"\n'
            f'key_file = "{paths["server-key"]}"\n'
            "verify_incoming_https = true\n"
        ),
    ).start()
    try:
        yield TlsConsul(
            agent,
            f"https://127.0.0.1:{https}",
            {
                "ca_file": str(paths["ca"]),
                "cert_file": str(paths["client"]),
                "key_file": str(paths["client-key"]),
            },
        )
    finally:
        agent.stop()


def test_a_sidecar_registers_and_the_edge_routes_through_consul_over_https(
    tmp_path: Path, tls_consul: TlsConsul
) -> None:
    mesh = Mesh(tmp_path, tls_consul.agent)
    try:
        consul: dict[str, Any] = {"address": tls_consul.address, **tls_consul.files}
        users = mesh.app("users", "users-1")
        mesh.sidecar(users, "users-1", extra={"consul": consul})  # waits for it in Consul
        edge = mesh.edge([USERS], {"consul": consul})
        status, _, body = http(f"{edge.url}/api/users/echo")
        assert status == 200 and b'"service": "users"' in body
    finally:
        mesh.close()
    # Deregistered on its way out, through the HTTPS API too.
    assert consul_api(tls_consul.agent, "GET", "/v1/catalog/service/users") == []


@pytest.mark.parametrize(
    ("change", "logged"),
    [
        # No client certificate: the agent refuses the handshake.
        ({"cert_file": None, "key_file": None}, "SSLV3_ALERT_BAD_CERTIFICATE"),
        # No CA: the agent's certificate is checked against the system's CAs, and fails.
        ({"ca_file": None}, "CERTIFICATE_VERIFY_FAILED"),
    ],
)
def test_without_the_right_certificates_the_edge_never_gets_the_catalog(
    tmp_path: Path, tls_consul: TlsConsul, change: dict[str, Any], logged: str
) -> None:
    mesh = Mesh(tmp_path, tls_consul.agent)
    try:
        consul = {"address": tls_consul.address, **tls_consul.files, **change}
        consul = {key: value for key, value in consul.items() if value is not None}
        edge = mesh.edge([USERS], {"consul": consul, "registration": {"enabled": False}},
                         wait_ready=False)  # fmt: skip
        log = mesh.workdir / f"edge-{edge.port}.log"
        wait_until(lambda: "consul query failed" in log.read_text(), 20, "the edge to say why")
        assert logged in log.read_text()
        status, _, body = http(f"http://127.0.0.1:{edge.admin}/readyz")
        assert status == 503 and b'"catalog": false' in body
    finally:
        mesh.close()
