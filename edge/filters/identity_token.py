"""Attach the edge-signed identity token for an authenticated caller (after the headers).

The token (see :mod:`mesh.identity.token`) carries the subject, the roles, the
request id and the exact identity headers just set, so a sidecar can refuse
identity headers the edge did not sign. Anonymous requests carry none (any
client copy was stripped before routing).
"""

from __future__ import annotations

from aiohttp import web

from edge.auth.identity import Identity
from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.identity.token import IdentitySigner


class IdentityTokenFilter:
    def __init__(self, signer: IdentitySigner, header: str) -> None:
        self._signer = signer
        self._header = header

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        identity: Identity | None = ex.attrs.get("identity")
        if identity is not None:
            ex.upstream_headers[self._header] = self._signer.sign(
                subject=identity.subject,
                roles=identity.roles,
                request_id=ex.request_id,
                method=identity.method,
                headers=ex.attrs.get("identity_headers", ()),
            )
        return await next_handler(ex)
