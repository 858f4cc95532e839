"""TLS termination settings, the server context, and the HTTP → HTTPS redirect."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from edge.config import EdgeConfig
from edge.https_redirect import HttpsRedirect, https_location
from edge.tls import ServerTls, TlsConfig, server_ssl_context
from mesh.config.errors import ConfigError


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


@pytest.mark.parametrize(
    ("min_version", "expected"),
    [("TLS1.2", ssl.TLSVersion.TLSv1_2), ("TLS1.3", ssl.TLSVersion.TLSv1_3)],
)
def test_context_refuses_older_protocols(
    cert_files: tuple[Path, Path], min_version: str, expected: ssl.TLSVersion
) -> None:
    cert, key = cert_files
    config = TlsConfig.model_validate(
        {"cert_file": str(cert), "key_file": str(key), "min_version": min_version}
    )
    context = server_ssl_context(config)
    assert context.minimum_version == expected
    assert context.verify_mode == ssl.CERT_NONE  # no client certificates asked for


def test_unloadable_files_are_config_errors(cert_files: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = cert_files
    missing = TlsConfig(cert_file=str(tmp_path / "nope.pem"), key_file=str(key))
    with pytest.raises(ConfigError, match="TLS file not found"):
        server_ssl_context(missing)
    mismatched = TlsConfig(cert_file=str(cert), key_file=str(cert))
    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        server_ssl_context(mismatched)


@pytest.mark.parametrize(
    ("host", "target", "port", "expected"),
    [
        ("example.com", "/a?b=1", 8443, "https://example.com:8443/a?b=1"),
        ("example.com:8080", "/", 8443, "https://example.com:8443/"),
        ("Example.COM:80", "/x", 443, "https://example.com/x"),
        ("[::1]:8080", "/x", 8443, "https://[::1]:8443/x"),
        ("127.0.0.1", "/x", 443, "https://127.0.0.1/x"),
        ("", "/x", 443, None),
        ("evil.com/path", "/x", 443, None),
        ("a b", "/x", 443, None),
        ("evil.com\r\nSet-Cookie: x", "/x", 443, None),
    ],
)
def test_https_location(host: str, target: str, port: int, expected: str | None) -> None:
    assert https_location(host, target, port) == expected


async def test_redirect_handler() -> None:
    handler = HttpsRedirect(8443)
    request = make_mocked_request("POST", "/a/../b?x=1", headers={"Host": "shop.example:8080"})
    response = await handler(request)
    assert isinstance(response, web.Response)
    assert response.status == 308
    assert response.headers["Location"] == "https://shop.example:8443/b?x=1"
    assert response.headers["X-Request-Id"]
    bad = await handler(make_mocked_request("GET", "/", headers={"Host": "bad host"}))
    assert bad.status == 400


# -- ServerTls: the certificate replaced while serving -----------------------------------


def _issue(ca: trustme.CA, cert_file: Path, key_file: Path) -> bytes:
    """A new certificate for 127.0.0.1 written to the files; its DER form."""
    cert = ca.issue_cert("127.0.0.1")
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_file))
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


async def _served(port: int, client: ssl.SSLContext) -> bytes:
    # An IP address as the name: Python sends no SNI, so this also shows the switch
    # happens for clients that name no server.
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, server_hostname="127.0.0.1"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return bytes(der)


async def test_server_tls_serves_the_reloaded_certificate_to_new_handshakes(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = _issue(ca, cert_file, key_file)
    config = EdgeConfig(tls=TlsConfig(cert_file=str(cert_file), key_file=str(key_file)))
    assert config.tls is not None
    tls = ServerTls(config.tls)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=tls.context)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context()
    ca.configure_trust(client)
    try:
        assert await _served(port, client) == first
        second = _issue(ca, cert_file, key_file)
        reload = tls.prepare_reload(config)
        assert reload is not None and reload.keys == ("tls.cert_file", "tls.key_file")
        assert await _served(port, client) == first  # prepared, not committed
        reload.commit()
        assert await _served(port, client) == second

        # A key of another certificate: refused whole, the served pair untouched.
        key_file.write_bytes(ca.issue_cert("other").private_key_pem.bytes())
        with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
            tls.prepare_reload(config)
        assert await _served(port, client) == second
        assert tls.prepare_reload(EdgeConfig()) is None  # TLS off waits for a restart
    finally:
        server.close()
        await server.wait_closed()
