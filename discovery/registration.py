"""Register a service instance in Consul's local agent, keep it there, remove it on shutdown.

The check is an HTTP check against the *sidecar's* inbound address and the
app's health path, so it tests the whole path the mesh uses (sidecar and app);
with mesh TLS, against the sidecar's admin listener, which asks the app
(:mod:`sidecar.app_health`).
A keeper loop re-registers the instance if the agent lost it (an agent
restart, a dev agent started afresh), so the instance comes back by itself,
and registers it again when :meth:`Registration.update` changed what it says
(tags, meta), until the agent has taken the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import consul
import consul.aio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistrationSpec:
    name: str
    service_id: str
    address: str
    port: int
    check_url: str
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    check_interval: str = "1s"
    check_timeout: str = "1s"
    deregister_critical_after: str = "1m"
    connect_native: bool = False
    """Registered as Consul Connect-native: callers reach it over mesh TLS."""

    def check(self) -> dict[str, object]:
        check: dict[str, object] = consul.Check.http(
            self.check_url,
            self.check_interval,
            timeout=self.check_timeout,
            deregister=self.deregister_critical_after,
        )
        return check


class Registration:
    def __init__(
        self, client: consul.aio.Consul, spec: RegistrationSpec, keep_interval_s: float = 5.0
    ) -> None:
        self._consul = client
        self.spec = spec
        self._keep_interval = keep_interval_s
        self._task: asyncio.Task[None] | None = None
        self.registered = False
        self._stale = False
        """The agent holds an older spec than :attr:`spec` (see :meth:`update`)."""
        self._nudge = asyncio.Event()

    async def register(self) -> None:
        """Register (idempotent). Raises on failure; ``start`` retries for you."""
        s = self.spec
        await self._consul.agent.service.register(
            s.name,
            service_id=s.service_id,
            address=s.address,
            port=s.port,
            tags=list(s.tags),
            meta=dict(s.meta),
            check=s.check(),
            connect={"Native": True} if s.connect_native else None,
        )
        self.registered = True
        log.info("registered %s (%s) at %s:%s", s.name, s.service_id, s.address, s.port)

    async def start(self) -> None:
        """Register now if Consul answers, and keep the instance registered from then on."""
        with contextlib.suppress(Exception):
            await self.register()
        self._task = asyncio.create_task(self._keep(), name="consul-registration")

    def update(self, spec: RegistrationSpec) -> None:
        """Say ``spec`` from now on (the same service id, e.g. other tags or meta): the
        keeper registers it at once, and again until the agent has taken it."""
        self.spec = spec
        self._stale = True
        self._nudge.set()

    async def _keep(self) -> None:
        while True:
            wait = 0.5 if not self.registered or self._stale else self._keep_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), wait)
            self._nudge.clear()
            try:
                if self._stale:
                    self._stale = False
                    try:
                        await self.register()
                    except Exception:
                        self._stale = True
                        raise
                    continue
                services = await self._consul.agent.services()
                if self.spec.service_id not in services:
                    if self.registered:
                        log.warning("the agent lost %s; registering again", self.spec.service_id)
                    await self.register()
            except Exception as exc:
                log.debug("registration check failed: %s", exc)

    async def deregister(self) -> None:
        """Stop the keeper and remove the instance. Never raises (shutdown must go on)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(2):
                await self._consul.agent.service.deregister(self.spec.service_id)
            log.info("deregistered %s", self.spec.service_id)
        except Exception as exc:
            log.warning("could not deregister %s: %s", self.spec.service_id, exc)
        self.registered = False
