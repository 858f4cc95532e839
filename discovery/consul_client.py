"""Build py-consul's asyncio client from settings."""

from __future__ import annotations

import consul.aio

from discovery.settings import ConsulSettings


def make_consul(settings: ConsulSettings) -> consul.aio.Consul:
    host, port = settings.host_port
    return consul.aio.Consul(
        host=host,
        port=port,
        scheme=settings.scheme,
        token=settings.token or None,
        dc=settings.datacenter,
    )
