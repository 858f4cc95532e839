"""Follow Consul's catalog with blocking queries and publish whole snapshots.

One task follows ``/v1/catalog/services`` (unless the service list is fixed)
and keeps one task per service following ``/v1/health/service/<name>``. Each
answer replaces that service's raw entries; a pure function rebuilds the whole
snapshot and the store swaps it atomically (dropping it if nothing changed).

When Consul cannot be reached the last snapshot keeps serving, the store is
marked out of sync (its age becomes visible), and queries are retried with
jittered exponential backoff (tenacity). A retried query asks without an
index (from 0), so a restarted Consul whose indexes went backwards is followed
again at once rather than after a whole blocking ``wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import consul.aio
from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from discovery.convert import build_snapshot
from mesh.snapshot import SnapshotStore

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        self._wait = f"{max(1, int(wait_s))}s"
        # A blocking query answers within wait + wait/16 (Consul's jitter); past
        # that the connection is presumed dead.
        self._query_timeout = wait_s * 1.1 + 5
        self._max_backoff = max_backoff_s
        self._raw: dict[str, Sequence[Mapping[str, Any]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending_first: set[str] = set()
        self._list_task: asyncio.Task[None] | None = None
        self._rebuild_scheduled = False
        self._initialised = False
        self.errors = 0

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

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            wait=wait_random_exponential(multiplier=0.1, max=self._max_backoff),
            retry=retry_if_exception_type(Exception),
            before_sleep=self._on_failure,
            reraise=True,
        )

    def _on_failure(self, retry_state: Any) -> None:
        self.errors += 1
        self._store.mark_out_of_sync()
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if retry_state.attempt_number == 1:
            log.warning("consul query failed, serving the last snapshot: %s", exc)

    async def _query(self, call: Callable[[str | None], Awaitable[T]], index: str | None) -> T:
        """``call(index)``, retried with backoff until it answers.

        Only the first attempt blocks on ``index``: after a failure the agent
        may be a new one whose indexes started over, and a blocking query on an
        index it has not reached would wait out the whole ``wait`` before
        telling us anything. Retries ask without an index, so they answer at once.
        """
        async for attempt in self._retrying():
            with attempt:
                at = index if attempt.retry_state.attempt_number == 1 else None
                async with asyncio.timeout(self._query_timeout):
                    result = await call(at)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _follow_catalog(self) -> None:
        index: str | None = None
        while True:
            try:
                index, services = await self._query(self._catalog_services, index)
            except Exception:
                index = None
                continue
            self._store.mark_synced()
            self._reconcile({name for name in services if name not in _IGNORED})

    async def _catalog_services(self, index: str | None) -> Any:
        return await self._consul.catalog.services(index=index, wait=self._wait)

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
        index: str | None = None

        async def query(at: str | None) -> Any:
            return await self._consul.health.service(name, index=at, wait=self._wait)

        while True:
            try:
                new_index, entries = await self._query(query, index)
            except asyncio.CancelledError:
                raise
            except Exception:
                index = None
                continue
            # Consul: an index that goes backwards (or is not positive) means
            # start over; treat it as a fresh query.
            if index is not None and _as_int(new_index) < _as_int(index):
                index = None
            else:
                index = new_index if _as_int(new_index) > 0 else None
            self._raw[name] = entries
            self._pending_first.discard(name)
            self._store.mark_synced()
            self._schedule_rebuild()

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


def _as_int(index: Any) -> int:
    try:
        return int(index)
    except (TypeError, ValueError):
        return 0
