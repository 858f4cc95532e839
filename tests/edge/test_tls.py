"""TLS termination settings, the server context, and the HTTP → HTTPS redirect."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from edge.https_redirect import HttpsRedirect, https_location
from edge.tls import MinVersion, TlsConfig, server_ssl_context
from mesh.config.errors import ConfigError
from tests.edge.refused_config import assert_refused


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
    cert_files: tuple[Path, Path], min_version: MinVersion, expected: ssl.TLSVersion
) -> None:
    cert, key = cert_files
    context = server_ssl_context(str(cert), str(key), min_version)
    assert context.minimum_version == expected
    assert context.verify_mode == ssl.CERT_NONE  # no client certificates asked for


def test_unloadable_files_are_config_errors(cert_files: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = cert_files
    with pytest.raises(ConfigError, match="TLS file not found"):
        server_ssl_context(str(tmp_path / "nope.pem"), str(key), "TLS1.2")
    with pytest.raises(ConfigError, match="cannot load the TLS certificate") as caught:
        server_ssl_context(str(cert), str(cert), "TLS1.2")
    assert caught.value.file == str(cert)


def test_certificates_default_to_none_and_names_are_normalised() -> None:
    config = TlsConfig.model_validate(
        {
            "cert_file": "d.pem",
            "key_file": "d.key",
            "certificates": [
                {"cert_file": "a.pem", "key_file": "a.key"},
                {
                    "cert_file": "b.pem",
                    "key_file": "b.key",
                    "server_names": ["Shop.Example.ORG", "*.shop.example.org.", "shop.example.org"],
                },
            ],
        }
    )
    assert TlsConfig(cert_file="d.pem", key_file="d.key").certificates == ()
    assert config.certificates[0].server_names is None  # from the certificate's SAN
    assert config.certificates[1].server_names == ("shop.example.org", "*.shop.example.org")


_TLS = "tls:\n  cert_file: d.pem\n  key_file: d.key\n  certificates:\n"


@pytest.mark.parametrize(
    ("certificates", "key_path", "problem"),
    [
        ("    - {cert_file: a.pem}", "tls.certificates[0].key_file", "required key is missing"),
        ("    - {cert_file: a.pem, key_file: a.key, names: [a.test]}",
         "tls.certificates[0].names", "unknown key"),
        ("    - {cert_file: a.pem, key_file: a.key, server_names: []}",
         "tls.certificates[0].server_names", "list at least one name"),
        ("    - {cert_file: a.pem, key_file: a.key, server_names: [a.test]}\n"
         "    - {cert_file: b.pem, key_file: b.key, server_names: ['a*.test']}",
         "tls.certificates[1].server_names", "a wildcard may only be the whole first label"),
        ("    - {cert_file: a.pem, key_file: a.key, server_names: [10.0.0.1]}",
         "tls.certificates[0].server_names", "an IP address"),
        ("    - {cert_file: a.pem, key_file: a.key, server_names: [a.test, '*.b.test']}\n"
         "    - {cert_file: b.pem, key_file: b.key, server_names: [c.test, '*.B.test']}",
         "tls.certificates",
         "*.b.test is listed by both certificates[0] (a.pem) and certificates[1] (b.pem)"),
        ("    - {cert_file: a.pem, key_file: a.key, server_names: [A.test]}\n"
         "    - {cert_file: b.pem, key_file: b.key, server_names: [a.TEST]}",
         "tls.certificates",
         "a.test is listed by both certificates[0] (a.pem) and certificates[1] (b.pem)"),
    ],
)  # fmt: skip
def test_bad_certificates_are_refused_naming_the_key(
    tmp_path: Path, certificates: str, key_path: str, problem: str
) -> None:
    assert_refused(tmp_path, _TLS + certificates, key_path, problem)


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
