"""Set the identity headers of an authenticated caller (after authentication).

Headers are *set*, never appended: whatever copy might exist is replaced (the
strip filter already removed every client copy). The pairs set are left in
``ex.attrs["identity_headers"]`` for the identity token to sign.
"""

from __future__ import annotations

from aiohttp import web

from edge.auth.identity import Identity, IdentityHeaders
from edge.auth.object_memo import ObjectMemo
from mesh.chain import Handler
from mesh.exchange import Exchange

IDENTITY_HEADERS_ATTR = "identity_headers"
"""``ex.attrs`` key of the (header, value) pairs set for the caller."""


class IdentityHeadersFilter:
    def __init__(self, headers: IdentityHeaders) -> None:
        # Identities of cached callers are the same objects: render each once.
        self._render: ObjectMemo[Identity, tuple[tuple[str, str], ...]] = ObjectMemo(headers.render)
        self._rendered = self._render.known

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        identity: Identity | None = ex.attrs.get("identity")
        if identity is not None:
            pairs = self._rendered(id(identity))
            if pairs is None:
                pairs = self._render(identity)
            upstream = ex.upstream_headers
            for name, value in pairs:
                upstream[name] = value
            ex.attrs[IDENTITY_HEADERS_ATTR] = pairs
        return await next_handler(ex)
