"""Build py-consul's asyncio client from settings, over HTTPS with the settings' CA and
client certificate when the address says ``https://``."""

from __future__ import annotations

import ssl

import consul.aio

from discovery.settings import ConsulSettings
from mesh.config.errors import ConfigError


def make_consul(settings: ConsulSettings) -> consul.aio.Consul:
    """The client; raises ConfigError naming the file and key when a TLS file of
    ``settings`` cannot be used (checked here, so that py-consul never meets it)."""
    host, port = settings.host_port
    https = settings.scheme == "https"
    if https:
        check_consul_tls(settings)
    verify: bool | str = settings.tls_verify
    if https and settings.tls_verify and settings.ca_file is not None:
        verify = settings.ca_file
    cert = (settings.cert_file, settings.key_file) if https and settings.cert_file else None
    client = consul.aio.Consul(
        host=host,
        port=port,
        scheme=settings.scheme,
        token=settings.token or None,
        dc=settings.datacenter,
        verify=verify,
        cert=cert,
    )
    # py-consul lets $CONSUL_HTTP_TOKEN win over the token it is given; the file's
    # token (whose default is that variable) must.
    client.token = settings.token or None
    return client


def check_consul_tls(settings: ConsulSettings) -> None:
    """Load ``settings``' CA and client certificate as the client will (ConfigError if
    one cannot be read or used)."""
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        try:
            context.load_verify_locations(settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                settings.ca_file, f"cannot load the CA: {_reason(exc)}", "consul.ca_file"
            ) from None
    if settings.cert_file is not None and settings.key_file is not None:
        try:
            context.load_cert_chain(settings.cert_file, settings.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                settings.cert_file,
                f"cannot load the client certificate and key: {_reason(exc)}",
                "consul.cert_file",
            ) from None


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return exc.strerror or str(exc)
