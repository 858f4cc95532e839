"""nginx in front of nginx, plain and over mutual TLS: the C baseline for ``edge+sidecar+mtls``.

Two nginx hops, as the mesh has two proxy hops (edge, sidecar): a front nginx
proxies to a back nginx, which proxies to the upstream. In the mutual-TLS
variant the front presents a certificate and verifies the back's, and the
back takes only clients with a certificate from the CA, both issued by the
bench's Consul agent's Connect CA (the same kind of certificates meshgate
uses). nginx verifies a peer by name, not by SPIFFE URI: the front checks the
back's certificate's subject name (Consul writes ``<service>.svc.default.<id>.consul``;
a certificate without DNS names is checked against it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from bench.context import BenchContext
from bench.proxies import proxy_server_block, start_nginx
from demo.processes import free_port


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path
    roots: Path
    name: str
    """The certificate's subject common name (what nginx verifies)."""


def connect_leaf(ctx: BenchContext, service: str) -> Pem:
    """A Connect certificate for ``service`` and the CA's roots, written to the work dir."""
    leaf = ctx.consul_api("GET", f"/v1/agent/connect/ca/leaf/{service}")
    roots = ctx.consul_api("GET", "/v1/agent/connect/ca/roots")
    directory = ctx.path(f"tls-{service}")
    directory.mkdir(exist_ok=True)
    cert = x509.load_pem_x509_certificate(leaf["CertPEM"].encode())
    name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    pem = Pem(directory / "cert.pem", directory / "key.pem", directory / "roots.pem", str(name))
    pem.cert.write_text(leaf["CertPEM"])
    pem.key.write_text(leaf["PrivateKeyPEM"])
    pem.key.chmod(0o600)
    pem.roots.write_text("\n".join(r["RootCert"] for r in roots["Roots"]))
    return pem


def start_nginx_pair(ctx: BenchContext, mtls: bool) -> str:
    """Front nginx → back nginx → upstream; returns the front's base URL."""
    front_port, back_port = free_port(), free_port()
    listen_tls = upstream_tls = ""
    if mtls:
        front = connect_leaf(ctx, "bench-nginx-front")
        back = connect_leaf(ctx, "bench-nginx-back")
        listen_tls = f"""\
        ssl_certificate {back.cert};
        ssl_certificate_key {back.key};
        ssl_client_certificate {back.roots};
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;"""
        upstream_tls = f"""\
            proxy_ssl_certificate {front.cert};
            proxy_ssl_certificate_key {front.key};
            proxy_ssl_trusted_certificate {front.roots};
            proxy_ssl_verify on;
            proxy_ssl_name {back.name};
            proxy_ssl_session_reuse on;"""
    suffix = "-mtls" if mtls else ""
    back_block = proxy_server_block(back_port, ctx.upstream_port, listen_tls=listen_tls)
    # The back takes no request without a client certificate: wait for its port only.
    start_nginx(ctx, f"nginx-back{suffix}", back_block, back_port, probe=not mtls)
    front_block = proxy_server_block(front_port, back_port, upstream_tls=upstream_tls)
    return start_nginx(ctx, f"nginx-front{suffix}", front_block, front_port)
