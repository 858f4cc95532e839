"""The Consul client's settings (discovery/consul_client.py, discovery/settings.py): the
Consul CLI's variables as defaults, the file's token over the environment's, and TLS
files checked before use. No socket: building the client sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from discovery.consul_client import check_consul_tls, make_consul
from discovery.settings import ConsulSettings
from mesh.config.errors import ConfigError


def test_the_consul_clis_variables_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "https://consul.example:8501")
    monkeypatch.setenv("CONSUL_CACERT", "/etc/consul/ca.pem")
    monkeypatch.setenv("CONSUL_CLIENT_CERT", "/etc/consul/client.pem")
    monkeypatch.setenv("CONSUL_CLIENT_KEY", "/etc/consul/client-key.pem")
    monkeypatch.setenv("CONSUL_HTTP_SSL_VERIFY", "false")
    settings = ConsulSettings()
    assert (settings.scheme, settings.host_port) == ("https", ("consul.example", 8501))
    assert (settings.ca_file, settings.cert_file, settings.key_file) == (
        "/etc/consul/ca.pem", "/etc/consul/client.pem", "/etc/consul/client-key.pem",
    )  # fmt: skip
    assert settings.tls_verify is False


def test_an_empty_file_setting_is_none_and_a_certificate_needs_its_key() -> None:
    # What ${CONSUL_CACERT:-} gives in a file when the variable is not set.
    settings = ConsulSettings.model_validate({"ca_file": "", "cert_file": "", "key_file": ""})
    assert (settings.ca_file, settings.cert_file, settings.key_file) == (None, None, None)
    with pytest.raises(ValidationError, match="cert_file and key_file go together"):
        ConsulSettings.model_validate({"cert_file": "/etc/consul/client.pem"})


async def test_the_files_token_wins_over_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-the-environment")
    given = {"address": "127.0.0.1:8500", "token": "from-the-file"}
    without = {"address": "127.0.0.1:8500"}
    for fields, used in ((given, "from-the-file"), (without, "from-the-environment")):
        client = make_consul(ConsulSettings.model_validate(fields))
        try:
            assert client.token == used
        finally:
            await client.close()


def test_tls_files_are_checked_naming_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("junk\n")
    https = "https://127.0.0.1:8501"
    with pytest.raises(ConfigError) as caught:
        check_consul_tls(ConsulSettings(address=https, ca_file=str(tmp_path / "none.pem")))
    assert str(caught.value) == (
        f"invalid configuration in {tmp_path}/none.pem: consul.ca_file: "
        "cannot load the CA: No such file or directory"
    )
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    junk = str(tmp_path / "junk.pem")
    settings = ConsulSettings(
        address=https, ca_file=str(tmp_path / "ca.pem"), cert_file=junk, key_file=junk
    )
    with pytest.raises(ConfigError, match=r"consul\.cert_file: cannot load the client cert"):
        make_consul(settings)  # checked before py-consul sees it
    client = ca.issue_cert("client")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client-key.pem"))
    good = settings.model_copy(
        update={
            "cert_file": str(tmp_path / "client.pem"),
            "key_file": str(tmp_path / "client-key.pem"),
        }
    )
    check_consul_tls(good)
