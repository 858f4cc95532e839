"""Header rules every proxy hop applies: hop-by-hop removal and X-Forwarded-*.

Pure functions over multidicts; the proxy calls them on the way up and down.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy, istr

# RFC 9110 §7.6.1 and the classic list from RFC 2616 §13.5.1; Proxy-Connection
# and Keep-Alive are sent by old clients and must not travel either.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)

Headers = CIMultiDict[str] | CIMultiDictProxy[str]

_CONNECTION = istr("Connection")


def connection_listed(headers: Headers) -> set[str]:
    """Lower-cased names listed in every ``Connection`` header (comma-separated)."""
    values = headers.getall(_CONNECTION, ())
    # One lower() and split() over all the values rather than per token.
    named = {token.strip() for token in ",".join(values).lower().split(",")}
    named.discard("")
    return named


def drop_names(also_drop: Iterable[str] = ()) -> frozenset[str]:
    """The names :func:`end_to_end` removes: hop-by-hop ones and ``also_drop``, lower-cased.

    Build it once (per listener, not per request) and pass it to every call.
    The names are :class:`multidict.istr`, so that multidicts compare them
    with their own names without folding their case again on every request.
    """
    return frozenset(istr(h.lower()) for h in (*HOP_BY_HOP, *also_drop))


_HOP_BY_HOP_NAMES = drop_names()


def end_to_end(headers: Headers, drop: frozenset[str] = _HOP_BY_HOP_NAMES) -> CIMultiDict[str]:
    """A copy of ``headers`` without the lower-cased names in ``drop`` (see
    :func:`drop_names`; it must hold :data:`HOP_BY_HOP`) and the headers named
    in ``Connection``."""
    # A copy, then removals by name, all in C: filtering item by item in
    # Python cost ~8k instructions for a handful of request headers, ~19k for
    # an upstream's response (which usually says "Connection: keep-alive").
    out = CIMultiDict(headers)
    names = headers.keys()
    if names.isdisjoint(drop):
        return out  # most requests: none of them
    # "connection" is in ``drop``, so a Connection header always gets here.
    if _CONNECTION in headers:
        for name in connection_listed(headers):
            out.popall(name, None)
    # Case-insensitive: every spelling of each name goes.
    for name in names & drop:
        out.popall(name, None)
    return out


def forwarded_chain(incoming: str | None, trusted_hops: int) -> list[str]:
    """The trusted tail of a client's X-Forwarded-For.

    Only the last ``trusted_hops`` entries were written by proxies we trust; the
    rest came from the client and are dropped, so the chain cannot be spoofed.
    """
    if not incoming or trusted_hops <= 0:
        return []
    entries = [e.strip() for e in incoming.split(",") if e.strip()]
    return entries[-trusted_hops:]


def client_address(peer: str, chain: list[str]) -> str:
    """The original client's address: the first trusted entry, else the peer."""
    return chain[0] if chain else peer


def header_block_items(block: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a rendered header block: ``"Name: value"``
    lines joined by CRLF, as :attr:`mesh.exchange.Exchange.upstream_header_block`
    holds them ("" gives none)."""
    if not block:
        return []
    return [
        (name, value) for name, _, value in (line.partition(": ") for line in block.split("\r\n"))
    ]
