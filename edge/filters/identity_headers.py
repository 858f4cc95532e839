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
from edge.object_memo import ObjectMemo
from mesh.chain import Handler
from mesh.exchange import Exchange

IDENTITY_HEADERS_ATTR = "identity_headers"
"""``ex.attrs`` key of the (header, value) pairs set for the caller."""


Pairs = tuple[tuple[str, str], ...]
Rendered = tuple[Pairs, frozenset[str], str]
"""``(pairs, names, block)``: the pairs to sign, their names (istr) and the
header lines as :attr:`mesh.exchange.Exchange.upstream_header_block` takes them."""


class IdentityHeadersFilter:
    def __init__(self, headers: IdentityHeaders) -> None:
        # Identities of cached callers are the same objects: render each once,
        # as the block of header lines the proxy sends as it is (no multidict
        # insert nor serialised line per header and request), with the names
        # as istr, whose case-folded form is computed once.
        def render(identity: Identity) -> Rendered:
            pairs = headers.render(identity)
            # One line per name, case-insensitively, where the first one was,
            # spelled and valued as the last: exactly what setting each pair
            # in turn would leave. Names are field names (checked when the
            # claim map is loaded) and values printable ASCII (header_value),
            # so the block holds no CR or LF but its separators.
            keyed = {name.lower(): (name, value) for name, value in pairs}
            names = frozenset(istr(name) for name, _ in keyed.values())
            block = "\r\n".join(f"{name}: {value}" for name, value in keyed.values())
            return pairs, names, block

        self.rendered: ObjectMemo[Identity, Rendered] = ObjectMemo(render)
        """``rendered(identity)``: ``(pairs, names, block)`` (see :data:`Rendered`);
        the same objects for the same identity object."""
        self.known: Callable[[int], Rendered | None] = self.rendered.known
        """``known(id(identity))``: what :attr:`rendered` gave for that identity
        before, else None (one dict look-up, for the per-request paths)."""

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        # A plain def: nothing to do on the way out (see mesh.chain.Filter).
        identity: Identity | None = ex.attrs.get("identity")
        if identity is not None:
            self.set_for(ex, identity)
        return next_handler(ex)

    def set_for(self, ex: Exchange, identity: Identity) -> None:
        """Set ``identity``'s headers on what goes upstream, and its pairs in
        ``ex.attrs[IDENTITY_HEADERS_ATTR]`` (for the identity token's signature).

        Every copy of those names in ``ex.upstream_headers`` is removed (set,
        never appended) and the rendered block sent after them; it replaces any
        block set before, so setting twice leaves what setting once does. Also
        what the authenticate filter calls when fused with this one.
        """
        pairs, names, block = self.known(id(identity)) or self.rendered(identity)
        upstream = ex.upstream_headers
        # Usually none (the strip filter removed every client copy): one C call says so.
        if not upstream.keys().isdisjoint(names):
            for name in names:
                upstream.popall(name, None)
        ex.upstream_header_block = block
        ex.attrs[IDENTITY_HEADERS_ATTR] = pairs
