"""Follow Consul's catalog with blocking queries and publish whole snapshots.

One task follows ``/v1/catalog/services`` (unless the service list is fixed)
and keeps one task per service following ``/v1/health/service/<name>``. Each
answer replaces that service's raw entries; a pure function rebuilds the whole
snapshot and the store swaps it atomically (dropping it if nothing changed).

When Consul cannot be reached the last snapshot keeps serving, the store is
marked out of sync (its age becomes visible), and queries are retried as
:mod:`discovery.blocking` describes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import consul.aio

from discovery.blocking import BlockingFollower
from discovery.convert import build_snapshot
from mesh.snapshot import SnapshotStore

log = logging.getLogger(__name__)

# Consul itself shows up in the catalog; it is never a mesh upstream.
_IGNORED = frozenset({"consul"})


class CatalogWatcher:
    def __init__(
        self,
        client: consul.aio.Consul,
        store: SnapshotStore,
        *,
        services: Sequence[str] | None = None,
        wait_s: float = 30.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        """``services`` fixes the list to follow; None follows every service in the catalog."""
        self._consul = client
        self._store = store
        self._fixed = tuple(services) if services is not None else None
        self._follower = BlockingFollower(wait_s, max_backoff_s, self._on_failure)
        self._raw: dict[str, Sequence[Mapping[str, Any]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending_first: set[str] = set()
        self._list_task: asyncio.Task[None] | None = None
        self._rebuild_scheduled = False
        self._initialised = False

    async def start(self) -> None:
        if self._fixed is not None:
            self._reconcile(set(self._fixed))
        else:
            self._list_task = asyncio.create_task(self._follow_catalog(), name="consul-catalog")

    async def stop(self) -> None:
        tasks = [t for t in (self._list_task, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _on_failure(self, exc: BaseException | None, attempt: int) -> None:
        self._store.mark_out_of_sync()
        if attempt == 1:
            log.warning("consul query failed, serving the last snapshot: %s", exc)

    async def _follow_catalog(self) -> None:
        def answered(services: Any) -> None:
            self._store.mark_synced()
            self._reconcile({name for name in services if name not in _IGNORED})

        await self._follower.follow(self._catalog_services, answered)

    async def _catalog_services(self, index: str | None) -> Any:
        return await self._consul.catalog.services(index=index, wait=self._follower.wait)

    def _reconcile(self, names: set[str]) -> None:
        for gone in set(self._tasks) - names:
            self._tasks.pop(gone).cancel()
            self._raw.pop(gone, None)
            self._pending_first.discard(gone)
        for new in names - set(self._tasks):
            self._pending_first.add(new)
            self._tasks[new] = asyncio.create_task(self._follow_service(new), name=f"consul-{new}")
        self._schedule_rebuild()

    async def _follow_service(self, name: str) -> None:
        async def query(at: str | None) -> Any:
            return await self._consul.health.service(name, index=at, wait=self._follower.wait)

        def answered(entries: Any) -> None:
            self._raw[name] = entries
            self._pending_first.discard(name)
            self._store.mark_synced()
            self._schedule_rebuild()

        await self._follower.follow(query, answered)

    def _schedule_rebuild(self) -> None:
        if not self._rebuild_scheduled:
            self._rebuild_scheduled = True
            asyncio.get_running_loop().call_soon(self._rebuild)

    def _rebuild(self) -> None:
        self._rebuild_scheduled = False
        if self._pending_first:
            return  # publish the first snapshot only once every service has answered
        raw = {name: self._raw[name] for name in self._tasks if name in self._raw}
        if self._store.publish(build_snapshot(raw)):
            log.info("catalog changed: %s", {n: len(e) for n, e in sorted(raw.items())})
