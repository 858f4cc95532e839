"""Run without Consul: services and instances from a YAML file, reloaded when it changes.

File format::

    services:
      users:
        - address: 127.0.0.1
          port: 9001
          id: users-1          # optional, default <service>-<address>-<port>
          tags: [v1]           # optional
          meta: {meshgate-route: /api/users}   # optional, as in Consul
          weight: 3            # optional, default 1: as Consul's Weights.Passing
          zone: eu-west-1a     # optional: for locality-aware routing
          region: eu-west-1    # optional
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from pydantic import Field

from mesh.config.errors import ConfigError
from mesh.config.loader import load_config
from mesh.config.types import Frozen, Port
from mesh.snapshot import Instance, ServiceEntry, Snapshot, SnapshotStore, make_snapshot

log = logging.getLogger(__name__)


class StaticInstance(Frozen):
    address: str
    port: Port
    id: str | None = None
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = Field(default_factory=dict)
    healthy: bool = True
    weight: int = Field(default=1, ge=1)
    """Share of the service's traffic relative to its other instances (Consul's
    ``Weights.Passing``)."""
    zone: str = ""
    """The instance's zone, for locality-aware routing ("": unknown)."""
    region: str = ""


class StaticCatalog(Frozen):
    services: dict[str, tuple[StaticInstance, ...]] = Field(default_factory=dict)


def catalog_to_snapshot(catalog: StaticCatalog) -> Snapshot:
    """Pure: the validated file → Snapshot."""
    services: dict[str, ServiceEntry] = {}
    for name, items in sorted(catalog.services.items()):
        instances = [
            Instance(
                id=item.id or f"{name}-{item.address}-{item.port}",
                service=name,
                address=item.address,
                port=item.port,
                healthy=item.healthy,
                tags=item.tags,
                meta=tuple(sorted(item.meta.items())),
                weight=item.weight,
                zone=item.zone,
                region=item.region,
            )
            for item in items
        ]
        instances.sort(key=lambda i: i.id)
        services[name] = ServiceEntry(name=name, instances=tuple(instances))
    return make_snapshot(services, "static")


class StaticFileProvider:
    """Loads the file at start (a bad file is a ConfigError) and polls it for changes.

    A file that becomes invalid later is logged and ignored: the last good
    snapshot keeps serving.
    """

    def __init__(self, path: str, store: SnapshotStore, poll_s: float = 1.0) -> None:
        self._path = path
        self._store = store
        self._poll = poll_s
        self._mtime: float | None = None
        self._task: asyncio.Task[None] | None = None

    def load(self) -> None:
        self._mtime = _mtime(self._path)
        self._store.publish(catalog_to_snapshot(load_config(self._path, StaticCatalog)))

    async def start(self) -> None:
        self.load()
        self._task = asyncio.create_task(self._watch(), name="static-catalog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            mtime = _mtime(self._path)
            if mtime == self._mtime:
                self._store.mark_synced()
                continue
            try:
                self.load()
            except ConfigError as exc:
                self._mtime = mtime
                self._store.mark_out_of_sync()
                log.error("%s; keeping the last good catalog", exc)


def _mtime(path: str) -> float | None:
    with contextlib.suppress(OSError):
        return os.stat(Path(path)).st_mtime
    return None
