"""Inbound identity check: the app only sees identity the edge signed (see sidecar.identity)."""

from __future__ import annotations

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from sidecar.identity import EdgeKeys, InboundIdentity, edge_keys, inbound_identity
from sidecar.identity_config import SidecarIdentityConfig


class InboundIdentityFilter:
    """401 problem for a refused identity; otherwise edits the headers and passes on.

    Owns the key source's lifecycle (:meth:`start`, :meth:`stop`).
    """

    def __init__(self, identity: InboundIdentity, keys: EdgeKeys) -> None:
        self.identity = identity
        self._keys = keys

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        reason = await self.identity.apply(ex.upstream_headers, ex.request_id)
        if reason is not None:
            return ex.problem(
                401,
                "Unauthorized",
                reason,
                slug="identity-refused",
                headers={"WWW-Authenticate": 'MeshIdentity realm="meshgate"'},
            )
        return await next_handler(ex)

    async def start(self) -> None:
        await self._keys.start()

    async def stop(self) -> None:
        await self._keys.stop()

    def view(self) -> dict[str, object]:
        """The ``/identity`` admin view: outcomes counted since start."""
        return dict(self.identity.stats.__dict__)


def identity_filter(config: SidecarIdentityConfig) -> InboundIdentityFilter | None:
    """The filter ``config`` asks for, or None when the check is off."""
    if not config.enabled:
        return None
    keys = edge_keys(config)
    return InboundIdentityFilter(inbound_identity(config, keys), keys)
