"""Attach the edge-signed identity token for an authenticated caller (after the headers).

The token (see :mod:`mesh.identity.token`) carries the subject, the roles, the
request id and the exact identity headers just set, so a sidecar can refuse
identity headers the edge did not sign. Anonymous requests carry none (any
client copy was stripped before routing).

A filter before it that needed the token already (the external authorization check,
:mod:`edge.filters.ext_authz`, sends it to an authorization service that may sit
behind a sidecar requiring it) leaves it in ``ex.attrs[SIGNED_TOKEN_ATTR]`` with the
identity headers it signed; it is sent again when those are exactly the headers set
now, rather than signed twice (an ECDSA signature each).
"""

from __future__ import annotations

from aiohttp import web

from edge.auth.identity import Identity
from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.identity.token import IdentitySigner

SIGNED_TOKEN_ATTR = "identity_token"
"""``ex.attrs`` key of ``(identity header pairs, token)``: the token signed for this
request over exactly those pairs, by a filter before this one."""


def sign_identity(
    signer: IdentitySigner, ex: Exchange, identity: Identity, pairs: tuple[tuple[str, str], ...]
) -> str:
    """The identity token of ``ex``'s caller ``identity``, over the identity header
    ``pairs`` sent with it."""
    return signer.sign(
        subject=identity.subject,
        roles=identity.roles,
        request_id=ex.request_id,
        method=identity.method,
        headers=pairs,
    )


class IdentityTokenFilter:
    def __init__(self, signer: IdentitySigner, header: str) -> None:
        self._signer = signer
        self._header = header

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        attrs = ex.attrs
        identity: Identity | None = attrs.get("identity")
        if identity is not None:
            pairs = attrs.get("identity_headers", ())
            signed = attrs.get(SIGNED_TOKEN_ATTR)
            if signed is not None and signed[0] == pairs:
                token = signed[1]
            else:
                token = sign_identity(self._signer, ex, identity, pairs)
            ex.upstream_headers[self._header] = token
        return await next_handler(ex)
