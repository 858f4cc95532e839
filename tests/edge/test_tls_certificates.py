"""Loading the edge's certificates: one context each, the names each is chosen for, expiry."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import trustme

from edge.tls import TlsConfig
from edge.tls_certificates import load_certificates
from mesh.config.errors import ConfigError
from tests.edge.tls_files import CertFiles, write_cert, write_self_signed


def _config(default: CertFiles, *certificates: Mapping[str, object], **extra: object) -> TlsConfig:
    return TlsConfig.model_validate({**default.pair(), "certificates": list(certificates), **extra})


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_names_from_the_subject_alt_name_or_server_names(ca: trustme.CA, tmp_path: Path) -> None:
    not_after = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    default = write_cert(ca, tmp_path, "default", "edge.example.com", "127.0.0.1")
    # The common name is never a name to match: only the subjectAltName's DNS names are.
    api = write_cert(
        ca, tmp_path, "api", "API.example.com", "*.api.example.com", "10.0.0.1",
        not_after=not_after, common_name="cn-only.example.com",
    )  # fmt: skip
    shop = write_cert(ca, tmp_path, "shop", "shop.example.org")
    served = load_certificates(
        _config(default, api.pair(), {**shop.pair(), "server_names": ["Shop.example.org"]})
    )
    assert served.default.names == ("edge.example.com",)  # the IP address SAN is no DNS name
    first, second = served.listed
    assert (first.names, first.names_from) == (
        ("api.example.com", "*.api.example.com"),
        "subjectAltName",
    )
    assert (second.names, second.names_from) == (("shop.example.org",), "server_names")
    assert first.not_after == not_after
    assert served.view()["certificates"][0] == {
        "cert_file": str(api.cert_file),
        "key_file": str(api.key_file),
        "names": ["api.example.com", "*.api.example.com"],
        "names_from": "subjectAltName",
        "not_after": "2031-05-06T07:08:09+00:00",
        "serial": first.serial,
    }
    assert int(first.serial, 16) > 0

    assert served.select("api.example.com") is first.context
    assert served.select("v1.API.example.com") is first.context
    assert served.select("shop.example.org") is second.context
    assert served.select("edge.example.com") is served.default.context
    assert served.select("cn-only.example.com") is served.default.context
    assert served.select(None) is served.default.context
    contexts = {id(c.context) for c in served.all()}
    assert len(contexts) == 3  # one context per certificate


def test_every_context_has_the_listeners_settings(ca: trustme.CA, tmp_path: Path) -> None:
    default = write_cert(ca, tmp_path, "default", "edge.test")
    other = write_cert(ca, tmp_path, "other", "other.test")
    served = load_certificates(_config(default, other.pair(), min_version="TLS1.3"))
    for certificate in served.all():
        assert certificate.context.minimum_version == ssl.TLSVersion.TLSv1_3
        assert certificate.context.verify_mode == ssl.CERT_NONE


def test_the_server_certificate_is_read_from_a_chain(tmp_path: Path) -> None:
    root = trustme.CA()
    intermediate = root.create_child_ca()
    default = write_cert(root, tmp_path, "default", "edge.test")
    leaf = write_cert(intermediate, tmp_path, "leaf", "leaf.test")
    assert leaf.cert_file.read_text().count("BEGIN CERTIFICATE") == 2
    (listed,) = load_certificates(_config(default, leaf.pair())).listed
    assert listed.names == ("leaf.test",)  # not the intermediate's (it has none)


def test_the_defaults_unmatchable_names_are_left_out(ca: trustme.CA, tmp_path: Path) -> None:
    # The default is served whatever the name: an odd SAN must not stop a start that
    # worked before tls.certificates existed.
    default = write_self_signed(tmp_path, "default", "edge.test", "a*.edge.test")
    assert load_certificates(_config(default)).default.names == ("edge.test",)


def test_a_file_name_conflict_names_both_files(ca: trustme.CA, tmp_path: Path) -> None:
    default = write_cert(ca, tmp_path, "default", "edge.test")
    one = write_cert(ca, tmp_path, "one", "a.test", "*.shared.test")
    two = write_cert(ca, tmp_path, "two", "b.test", "*.SHARED.test")
    with pytest.raises(ConfigError) as caught:
        load_certificates(_config(default, one.pair(), two.pair()))
    assert caught.value.file == str(two.cert_file)
    assert caught.value.problem.startswith(
        f"the certificate is chosen for *.shared.test, as {one.cert_file} is"
    )
    # Given server_names, either one can leave the name to the other.
    config = _config(default, one.pair(), {**two.pair(), "server_names": ["b.test"]})
    assert load_certificates(config).select("x.shared.test") is not None


def test_a_listed_name_wins_over_the_defaults_own(ca: trustme.CA, tmp_path: Path) -> None:
    default = write_cert(ca, tmp_path, "default", "edge.test", "api.test")
    api = write_cert(ca, tmp_path, "api", "api.test")
    served = load_certificates(_config(default, api.pair()))
    assert served.select("api.test") is served.listed[0].context


def _no_san(ca: trustme.CA, d: Path) -> CertFiles:
    return write_cert(ca, d, "bare", common_name="bare.test")


def _ip_san_only(ca: trustme.CA, d: Path) -> CertFiles:
    return write_cert(ca, d, "bare", "127.0.0.1", common_name="bare.test")


def _dns_names(*names: str) -> Callable[[trustme.CA, Path], CertFiles]:
    return lambda _ca, d: write_self_signed(d, "bare.test", *names)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_no_san, "the certificate has no DNS name in its subjectAltName: give server_names"),
        (_ip_san_only, "the certificate has no DNS name in its subjectAltName"),
        (_dns_names("ok.test", "a*.test"),
         "subjectAltName 'a*.test': a wildcard may only be the whole first label"),
        (_dns_names("*.*.test"), "subjectAltName '*.*.test': a wildcard may only be the whole"),
        (_dns_names("ok.test", "10.1.2.3"), "subjectAltName '10.1.2.3': an IP address"),
    ],
)  # fmt: skip
def test_a_certificate_without_names_to_match_is_refused(
    ca: trustme.CA,
    tmp_path: Path,
    make: Callable[[trustme.CA, Path], CertFiles],
    problem: str,
) -> None:
    default = write_cert(ca, tmp_path, "default", "edge.test")
    bare = make(ca, tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_certificates(_config(default, bare.pair()))
    assert caught.value.file == str(bare.cert_file)
    assert problem in caught.value.problem
    # Its names given in the config, it loads.
    fine = _config(default, {**bare.pair(), "server_names": ["bare.test"]})
    assert load_certificates(fine).listed[0].names == ("bare.test",)


def test_unloadable_files_are_config_errors_naming_them(ca: trustme.CA, tmp_path: Path) -> None:
    default = write_cert(ca, tmp_path, "default", "edge.test")
    other = write_cert(ca, tmp_path, "other", "other.test")
    missing = {"cert_file": str(tmp_path / "nope.pem"), "key_file": str(other.key_file)}
    with pytest.raises(ConfigError, match="TLS file not found") as caught:
        load_certificates(_config(default, missing))
    assert caught.value.file == missing["cert_file"]
    wrong_key = {"cert_file": str(other.cert_file), "key_file": str(default.key_file)}
    with pytest.raises(ConfigError, match="cannot load the TLS certificate and key") as caught:
        load_certificates(_config(default, wrong_key))
    assert caught.value.file == str(other.cert_file)
