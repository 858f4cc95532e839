"""Strip spoofed identity headers from every request, before routing.

Runs for every request, matched or not (no-route 404s, auth ``none`` routes,
health paths): every client copy of a managed identity header, and of the
internal identity token, is removed from what goes upstream, whatever its
case, however many copies, and in ``_`` spellings (``X_User_Id``). Headers
named in ``Connection`` were already dropped by the ingress, so nothing a
client listed there survives either. Only the edge sets these headers, later,
for an authenticated caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.identity.headers import header_keys, remove_managed


class StripIdentityFilter:
    """Guarantee: after it, ``ex.upstream_headers`` has no header whose key is managed."""

    def __init__(self, managed: Iterable[str]) -> None:
        self._keys = header_keys(managed)

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        # A plain def: nothing to do on the way out (see mesh.chain.Filter).
        remove_managed(ex.upstream_headers, self._keys)
        return next_handler(ex)
