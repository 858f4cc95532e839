"""Several TLS certificates on one edge listener, chosen by SNI: a real edge process, Consul,
a service behind its sidecar, Python's own TLS client.

What is checked: each server name gets its certificate (verified against the
test CA, host name included), an unknown name and no SNI get the default one,
HTTP requests reach the routed service over each; the admin listener's ``/tls``
and the expiry gauge show what is served; a SIGHUP that adds a certificate
serves it for its name at once.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import urllib.request
from pathlib import Path
from typing import Any

import trustme

from tests.edge.tls_files import write_cert
from tests.integration.harness import Edge, Mesh, hang_up, metrics, rewrite

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
EXPIRY = "meshgate_tls_certificate_expiry_timestamp_seconds"


def _get(
    edge: Edge, ca: trustme.CA, server_name: str | None, *, verify_name: bool = True
) -> tuple[dict[str, Any], bytes]:
    """A GET of the users service over TLS asking for ``server_name`` (None: no SNI);
    the certificate the edge presented (``getpeercert()``) and the response's head.

    With ``verify_name`` the name is checked against the certificate as browsers do;
    a name expected to get the default certificate (not its own) is not."""
    client = ssl.create_default_context()
    ca.configure_trust(client)
    client.check_hostname = server_name is not None and verify_name
    raw = socket.create_connection(("127.0.0.1", edge.port), timeout=5)
    with client.wrap_socket(raw, server_hostname=server_name) as tls:
        cert = tls.getpeercert()
        assert cert
        host = server_name or "127.0.0.1"
        tls.sendall(
            f"GET /api/users/echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        head = tls.recv(4096)
    return cert, head


def _sans(cert: dict[str, Any]) -> set[str]:
    return {value for kind, value in cert["subjectAltName"] if kind == "DNS"}


def _tls_view(edge: Edge) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin}/tls", timeout=5) as resp:
        view: dict[str, Any] = json.loads(resp.read())
    return view


def _expiry(edge: Edge) -> dict[str, float]:
    return {labels["file"]: value for labels, value in metrics(edge.admin).get(EXPIRY, [])}


def test_each_name_gets_its_certificate_and_a_reload_adds_one(mesh: Mesh, tmp_path: Path) -> None:
    ca = trustme.CA()
    default = write_cert(ca, tmp_path, "default", "edge.test")
    api_expires = datetime.datetime(2032, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    api = write_cert(ca, tmp_path, "api", "api.example.com", not_after=api_expires)
    shop = write_cert(ca, tmp_path, "shop", "*.shop.example.org")
    tls: dict[str, Any] = {**default.pair(), "certificates": [api.pair(), shop.pair()]}
    mesh.sidecar(mesh.app("users", "users-1"), "users-1")
    edge = mesh.edge([USERS], extra={"tls": tls})

    served: dict[str | None, set[str]] = {}
    for name in ["api.example.com", "eu.shop.example.org", "edge.test", "unknown.test", None]:
        cert, head = _get(edge, ca, name, verify_name=name != "unknown.test")
        assert head.startswith(b"HTTP/1.1 200"), (name, head)  # routed to the service
        served[name] = _sans(cert)
    assert served == {
        "api.example.com": {"api.example.com"},
        "eu.shop.example.org": {"*.shop.example.org"},
        "edge.test": {"edge.test"},
        "unknown.test": {"edge.test"},  # the default, as nginx's default server
        None: {"edge.test"},  # no SNI: the default too
    }

    view = _tls_view(edge)
    assert view["default"]["names"] == ["edge.test"]
    assert [(c["cert_file"], c["names"]) for c in view["certificates"]] == [
        (str(api.cert_file), ["api.example.com"]),
        (str(shop.cert_file), ["*.shop.example.org"]),
    ]
    assert view["certificates"][0]["not_after"] == api_expires.isoformat()
    expiry = _expiry(edge)
    assert set(expiry) == {str(default.cert_file), str(api.cert_file), str(shop.cert_file)}
    assert expiry[str(api.cert_file)] == api_expires.timestamp()

    # A certificate added to the file, with its names given there.
    blog = write_cert(ca, tmp_path, "blog", "blog.example.net", "news.example.net")
    tls["certificates"].append({**blog.pair(), "server_names": ["blog.example.net"]})
    rewrite(edge, tls=tls)
    view = hang_up(edge, "applied")
    assert view["last_reload"]["applied"] == ["tls.certificates"]
    cert, head = _get(edge, ca, "blog.example.net")
    assert _sans(cert) == {"blog.example.net", "news.example.net"}
    assert head.startswith(b"HTTP/1.1 200")
    # news.example.net is in its SAN but not in server_names: not chosen for it.
    cert, _ = _get(edge, ca, "news.example.net", verify_name=False)
    assert _sans(cert) == {"edge.test"}
    assert _sans(_get(edge, ca, "api.example.com")[0]) == {"api.example.com"}
    assert str(blog.cert_file) in _expiry(edge)

    # A file naming a name twice is refused whole: the running set stays.
    tls["certificates"].append(write_cert(ca, tmp_path, "twin", "api.example.com").pair())
    rewrite(edge, tls=tls)
    view = hang_up(edge, "refused")
    assert "the certificate is chosen for api.example.com" in view["last_reload"]["error"]
    assert _sans(_get(edge, ca, "blog.example.net")[0]) == {"blog.example.net", "news.example.net"}
