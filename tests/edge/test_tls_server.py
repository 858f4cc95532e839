"""The listener's certificates over real TLS handshakes: chosen by SNI, replaced by reloads."""

from __future__ import annotations

import asyncio
import datetime
import math
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from prometheus_client import CollectorRegistry

from edge.config import EdgeConfig
from edge.tls import TlsConfig
from edge.tls_metrics import TlsCertificateMetrics
from edge.tls_server import ServerTls
from mesh.config.errors import ConfigError
from tests.edge.tls_files import write_cert

EXPIRY = "meshgate_tls_certificate_expiry_timestamp_seconds"


class Served:
    """A TLS server on loopback with a :class:`ServerTls`'s context; :meth:`cert` is the
    certificate a new handshake gets."""

    def __init__(self, tls: ServerTls, ca: trustme.CA) -> None:
        self.tls = tls
        self.client = ssl.create_default_context()
        ca.configure_trust(self.client)
        # Unknown names get the default certificate, which is not theirs: the test
        # compares the certificates themselves.
        self.client.check_hostname = False
        self.port = 0

    async def cert(self, server_hostname: str) -> bytes:
        # An IP address as the name: Python sends no SNI.
        _, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.client, server_hostname=server_hostname
        )
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return bytes(der)


async def _serve(tls: ServerTls, ca: trustme.CA) -> tuple[Served, asyncio.Server]:
    served = Served(tls, ca)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=tls.context)
    served.port = server.sockets[0].getsockname()[1]
    return served, server


def _gauge(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.labels["file"]: s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == EXPIRY
    }


async def test_each_name_gets_its_certificate_and_a_reload_swaps_the_set(tmp_path: Path) -> None:
    ca = trustme.CA()
    default = write_cert(ca, tmp_path, "default", "edge.test")
    api = write_cert(ca, tmp_path, "api", "api.example.com")
    wild = write_cert(ca, tmp_path, "wild", "*.example.org")
    shop = write_cert(ca, tmp_path, "shop", "shop.example.net")
    certificates: list[dict[str, Any]] = [api.pair(), wild.pair()]
    config = EdgeConfig(
        tls=TlsConfig.model_validate({**default.pair(), "certificates": certificates})
    )
    assert config.tls is not None
    registry = CollectorRegistry()
    tls = ServerTls(config.tls, TlsCertificateMetrics(registry))
    served, server = await _serve(tls, ca)
    try:
        assert await served.cert("api.example.com") == api.der
        assert await served.cert("API.Example.com") == api.der
        assert await served.cert("shop.example.org") == wild.der
        assert await served.cert("a.b.example.org") == default.der  # one label only
        assert await served.cert("unknown.test") == default.der
        assert await served.cert("shop.example.net") == default.der  # not yet listed
        assert await served.cert("127.0.0.1") == default.der  # no SNI
        assert set(_gauge(registry)) == {
            str(default.cert_file),
            str(api.cert_file),
            str(wild.cert_file),
        }

        # A reload adds shop, drops wild, and renews api at the same paths.
        renewed_api = write_cert(ca, tmp_path, "api", "api.example.com")
        listed = [api.pair(), shop.pair()]
        new_config = EdgeConfig(
            tls=TlsConfig.model_validate({**default.pair(), "certificates": listed})
        )
        reload = tls.prepare_reload(new_config)
        assert reload is not None
        assert reload.keys == ("tls.cert_file", "tls.key_file", "tls.certificates")
        assert await served.cert("shop.example.net") == default.der  # prepared, not committed
        assert await served.cert("api.example.com") == api.der
        reload.commit()
        assert await served.cert("shop.example.net") == shop.der
        assert await served.cert("api.example.com") == renewed_api.der
        assert await served.cert("shop.example.org") == default.der  # wild is gone
        assert set(_gauge(registry)) == {
            str(default.cert_file),
            str(api.cert_file),
            str(shop.cert_file),
        }
        assert tls.view()["certificates"][1]["names"] == ["shop.example.net"]

        # One bad file refuses the whole set: every certificate stays as it was.
        (tmp_path / "shop.key").write_bytes(ca.issue_cert("x.test").private_key_pem.bytes())
        with pytest.raises(ConfigError, match="cannot load the TLS certificate") as caught:
            tls.prepare_reload(new_config)
        assert caught.value.file == str(shop.cert_file)
        assert await served.cert("shop.example.net") == shop.der
        assert await served.cert("api.example.com") == renewed_api.der
    finally:
        server.close()
        await server.wait_closed()


async def test_the_default_certificate_is_replaced_by_a_reload(tmp_path: Path) -> None:
    ca = trustme.CA()
    first = write_cert(ca, tmp_path, "cert", "127.0.0.1")
    config = EdgeConfig(tls=TlsConfig.model_validate(first.pair()))
    assert config.tls is not None
    tls = ServerTls(config.tls)
    served, server = await _serve(tls, ca)
    try:
        assert await served.cert("127.0.0.1") == first.der
        second = write_cert(ca, tmp_path, "cert", "127.0.0.1")
        reload = tls.prepare_reload(config)
        assert reload is not None
        assert await served.cert("127.0.0.1") == first.der  # prepared, not committed
        reload.commit()
        assert await served.cert("127.0.0.1") == second.der

        # A key of another certificate: refused whole, the served pair untouched.
        first.key_file.write_bytes(ca.issue_cert("other").private_key_pem.bytes())
        with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
            tls.prepare_reload(config)
        assert await served.cert("127.0.0.1") == second.der
        assert tls.prepare_reload(EdgeConfig()) is None  # TLS off waits for a restart
    finally:
        server.close()
        await server.wait_closed()


def test_the_expiry_gauge_follows_the_served_set(tmp_path: Path) -> None:
    ca = trustme.CA()
    when = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    default = write_cert(ca, tmp_path, "default", "edge.test", not_after=when)
    extra = write_cert(ca, tmp_path, "extra", "extra.test")
    registry = CollectorRegistry()
    config = TlsConfig.model_validate({**default.pair(), "certificates": [extra.pair()]})
    tls = ServerTls(config, TlsCertificateMetrics(registry))
    gauge = _gauge(registry)
    assert gauge[str(default.cert_file)] == when.timestamp()
    assert gauge[str(extra.cert_file)] == tls.served.listed[0].not_after.timestamp()
    reload = tls.prepare_reload(EdgeConfig(tls=config.model_copy(update={"certificates": ()})))
    assert reload is not None
    reload.commit()
    assert _gauge(registry) == {str(default.cert_file): when.timestamp()}
    assert not any(math.isnan(v) for v in _gauge(registry).values())
    assert tls.view() == {
        "min_version": "TLS1.2",
        "default": tls.served.default.view(),
        "certificates": [],
    }
