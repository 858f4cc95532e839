"""Follow Consul Connect for mesh TLS: this service's certificate, the CA roots, intentions.

Three blocking-query loops (:mod:`discovery.blocking`) on the local agent:

- ``/v1/agent/connect/ca/leaf/<service>``: the agent renews the certificate
  before it expires and answers the query with the new one;
- ``/v1/agent/connect/ca/roots``: a CA rotation adds the new root (and the
  agent then re-signs the certificate);
- ``/v1/connect/intentions`` (sidecars only): every intention; the table for
  this service is rebuilt on each change (:mod:`mesh.mtls.intentions`).

Each answer replaces what :class:`mesh.mtls.contexts.MeshTls` (or the
intentions holder) uses for new connections. While Consul cannot be reached
the last certificate, roots and intentions keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import consul.aio
from consul.callback import CB
from prometheus_client import CollectorRegistry

from discovery.blocking import BlockingFollower
from discovery.consul_client import make_consul
from discovery.settings import ConsulSettings
from mesh.config.reload import Reload
from mesh.mtls.config import MeshTlsConfig, SidecarMeshTlsConfig
from mesh.mtls.contexts import MeshTls
from mesh.mtls.intentions import Intention, IntentionTable, intentions_from_consul
from mesh.mtls.material import Leaf, MaterialError, Roots
from mesh.mtls.metrics import MeshTlsMetrics

log = logging.getLogger(__name__)


class ConnectWatcher:
    """Keeps ``mesh_tls`` (and, when followed, the intentions) up to date with Consul."""

    def __init__(
        self,
        client: consul.aio.Consul,
        mesh_tls: MeshTls,
        *,
        wait_s: float = 30.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._consul = client
        self._mesh_tls = mesh_tls
        self._on_intentions: Callable[[IntentionTable], None] | None = None
        self._default_allow = True
        self._follower = BlockingFollower(wait_s, max_backoff_s, self._on_failure)
        self._tasks: list[asyncio.Task[None]] = []
        self._intentions: tuple[Intention, ...] = ()
        self.intentions_known = asyncio.Event()
        """Set once the first list of intentions is in (at once when they are not followed)."""
        self.intentions_known.set()

    def follow_intentions(
        self, on_intentions: Callable[[IntentionTable], None], default_allow: bool
    ) -> None:
        """Also follow the intentions (before :meth:`start`): ``on_intentions`` gets the
        table of calls to this service at each change; ``default_allow`` decides calls
        no intention matches."""
        self._on_intentions = on_intentions
        self._default_allow = default_allow
        self.intentions_known.clear()

    def _on_failure(self, exc: BaseException | None, attempt: int) -> None:
        if attempt == 1:
            log.warning("consul connect query failed, keeping the last certificate: %s", exc)

    async def start(self) -> None:
        follow = self._follower.follow
        service = self._mesh_tls.service
        loops = [
            (f"/v1/agent/connect/ca/leaf/{service}", self._leaf),
            ("/v1/agent/connect/ca/roots", self._roots),
        ]
        if self._on_intentions is not None:
            loops.append(("/v1/connect/intentions", self._answered_intentions))
        for path, answered in loops:
            self._tasks.append(
                asyncio.create_task(follow(self._getter(path), answered), name=f"consul {path}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _getter(self, path: str) -> Callable[[str | None], Any]:
        http = self._consul.http
        headers = self._consul.prepare_headers()

        async def get(index: str | None) -> Any:
            params: list[tuple[str, str]] = [("wait", self._follower.wait)]
            if index is not None:
                params.append(("index", index))
            callback = CB.json(index=True, allow_404=False)
            return await http.get(callback, path, params=params, headers=headers)

        return get

    def _leaf(self, raw: Mapping[str, Any]) -> None:
        self._apply(lambda: self._mesh_tls.update(leaf=Leaf.from_consul(raw)), "certificate")

    def _roots(self, raw: Mapping[str, Any]) -> None:
        self._apply(lambda: self._mesh_tls.update(roots=Roots.from_consul(raw)), "roots")

    def _apply(self, update: Callable[[], None], what: str) -> None:
        try:
            update()
        except MaterialError as exc:
            # Keep serving with what was loaded before; the next answer may be usable.
            log.error("cannot use Consul's new %s for mesh TLS: %s", what, exc)

    def _answered_intentions(self, raw: Any) -> None:
        self._intentions = intentions_from_consul(raw)
        self._publish_intentions()
        self.intentions_known.set()

    def set_default_allow(self, allow: bool) -> None:
        """What decides when no intention matches, from now on (a reload)."""
        self._default_allow = allow
        if self.intentions_known.is_set():
            self._publish_intentions()

    def _publish_intentions(self) -> None:
        if self._on_intentions is not None:
            service = self._mesh_tls.service
            self._on_intentions(IntentionTable(service, self._intentions, self._default_allow))


class ConnectMeshTls:
    """A process's mesh TLS on Consul Connect: the contexts, their metrics and the watcher
    that feeds them, with their own Consul client. Start, :meth:`wait_ready`, stop."""

    def __init__(
        self,
        settings: ConsulSettings,
        service: str,
        config: MeshTlsConfig,
        registry: CollectorRegistry,
        role: str,
    ) -> None:
        self._config = config
        self.metrics = MeshTlsMetrics(registry, role)
        self.mesh_tls = MeshTls(service, require=config.require, on_replace=self.metrics.replaced)
        self._client = make_consul(settings)
        self.watcher = ConnectWatcher(self._client, self.mesh_tls, wait_s=settings.wait)

    def refresh_metrics(self) -> None:
        self.metrics.refresh(self.mesh_tls)

    async def start(self) -> None:
        await self.watcher.start()

    async def wait_ready(self) -> None:
        """Until the certificate, the roots (and intentions, if followed) are in; a warning
        each ``initial_fetch_timeout`` meanwhile. Consul may come up after this process."""
        timeout = self._config.initial_fetch_timeout
        while True:
            try:
                async with asyncio.timeout(timeout):
                    await self.mesh_tls.ready.wait()
                    await self.watcher.intentions_known.wait()
                return
            except TimeoutError:
                log.warning(
                    "mesh TLS: no certificate for %r from Consul's Connect CA after %gs; "
                    "still waiting (is Connect enabled on the agent?)",
                    self.mesh_tls.service,
                    timeout,
                )

    async def stop(self) -> None:
        await self.watcher.stop()
        await self._client.close()

    def prepare_reload(self, config: HasMeshTls) -> Reload | None:
        """``mesh_tls.require`` and (a sidecar's) ``mesh_tls.default_intention`` apply
        live; turning mesh TLS off, and the rest of the section, wait for a restart."""
        m = config.mesh_tls
        if not m.enabled:
            return None
        default = m.default_intention if isinstance(m, SidecarMeshTlsConfig) else None
        keys: tuple[str, ...] = ("mesh_tls.require",)
        if default is not None:
            keys += ("mesh_tls.default_intention",)

        def commit() -> None:
            self.mesh_tls.require = m.require
            if default is not None:
                self.watcher.set_default_allow(default == "allow")

        return Reload(keys, commit)


class HasMeshTls(Protocol):
    """An edge's or a sidecar's configuration, as far as mesh TLS reads it."""

    @property
    def mesh_tls(self) -> MeshTlsConfig: ...
