"""Choose and run the snapshot provider the configuration asks for (Consul or a static file)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from discovery.consul_client import make_consul
from discovery.settings import ConsulSettings, DiscoverySettings
from discovery.static_provider import StaticFileProvider
from discovery.watcher import CatalogWatcher
from mesh.snapshot import SnapshotStore

log = logging.getLogger(__name__)


class Provider(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ConsulProvider:
    """Owns the Consul client used for watching; closes it on stop."""

    def __init__(
        self, settings: ConsulSettings, discovery: DiscoverySettings, store: SnapshotStore
    ):
        self.client = make_consul(settings)
        self.watcher = CatalogWatcher(
            self.client, store, services=discovery.services, wait_s=settings.wait
        )

    async def start(self) -> None:
        await self.watcher.start()

    async def stop(self) -> None:
        await self.watcher.stop()
        await self.client.close()


def make_provider(
    discovery: DiscoverySettings, consul_settings: ConsulSettings, store: SnapshotStore
) -> Provider:
    if discovery.provider == "static":
        assert discovery.static_file is not None  # enforced by the config schemas
        return StaticFileProvider(discovery.static_file, store)
    return ConsulProvider(consul_settings, discovery, store)


async def wait_for_first_catalog(store: SnapshotStore, timeout_s: float, opening: str) -> bool:
    """Wait up to ``timeout_s`` for ``store``'s first snapshot, before opening ``opening``
    (a listener's name, for the log). True when it came; False, after a warning, when
    it did not (the caller opens the listener anyway: 503s until it comes)."""
    if store.ready.is_set():
        return True
    if timeout_s > 0:
        try:
            async with asyncio.timeout(timeout_s):
                await store.ready.wait()
            return True
        except TimeoutError:
            pass
    log.warning(
        "no catalog after %gs: opening the %s listener anyway (503 for every service "
        "until the first catalog arrives; discovery.initial_fetch_timeout)",
        timeout_s,
        opening,
    )
    return False
