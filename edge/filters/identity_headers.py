"""Set the identity headers of an authenticated caller (after authentication).

Headers are *set*, never appended: whatever copy might exist is replaced (the
strip filter already removed every client copy). The pairs set are left in
``ex.attrs["identity_headers"]`` for the identity token to sign.

When nothing sits between it and the authenticate filter, the edge runs the
two as one chain level (:meth:`edge.filters.authenticate.AuthenticateFilter.fuse_next`),
which sets the headers exactly as this filter would, through its
:attr:`IdentityHeadersFilter.known` and :attr:`IdentityHeadersFilter.rendered`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import istr

from edge.auth.identity import Identity, IdentityHeaders
from edge.auth.object_memo import ObjectMemo
from mesh.chain import Handler
from mesh.exchange import Exchange

IDENTITY_HEADERS_ATTR = "identity_headers"
"""``ex.attrs`` key of the (header, value) pairs set for the caller."""


Pairs = tuple[tuple[str, str], ...]


class IdentityHeadersFilter:
    def __init__(self, headers: IdentityHeaders) -> None:
        # Identities of cached callers are the same objects: render each once,
        # and keep the names also as istr, whose case-folded form is computed
        # once: setting a header by an istr name skips folding it per request.
        def render(identity: Identity) -> tuple[Pairs, Pairs]:
            pairs = headers.render(identity)
            # One entry per name, case-insensitively, where the first one was,
            # spelled and valued as the last: update() with these is then
            # exactly a setitem per pair, in order.
            keyed = {name.lower(): (istr(name), value) for name, value in pairs}
            return pairs, tuple(keyed.values())

        self.rendered: ObjectMemo[Identity, tuple[Pairs, Pairs]] = ObjectMemo(render)
        """``rendered(identity)``: ``(pairs, keyed)``, the pairs to sign and the
        same as one ``(istr name, value)`` per name, for ``update``; the same
        objects for the same identity object."""
        self.known: Callable[[int], tuple[Pairs, Pairs] | None] = self.rendered.known
        """``known(id(identity))``: what :attr:`rendered` gave for that identity
        before, else None (one dict look-up, for the per-request paths)."""

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        # A plain def: nothing to do on the way out (see mesh.chain.Filter).
        identity: Identity | None = ex.attrs.get("identity")
        if identity is not None:
            pairs, keyed = self.known(id(identity)) or self.rendered(identity)
            # One C call that replaces any header of each name: cheaper than
            # a setitem per header.
            ex.upstream_headers.update(keyed)
            ex.attrs[IDENTITY_HEADERS_ATTR] = pairs
        return next_handler(ex)
