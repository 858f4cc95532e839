"""Header rules every proxy hop applies: hop-by-hop removal and X-Forwarded-*.

Pure functions over multidicts; the proxy calls them on the way up and down.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

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


def connection_listed(headers: Headers) -> set[str]:
    """Lower-cased names listed in every ``Connection`` header (comma-separated)."""
    named: set[str] = set()
    for value in headers.getall("Connection", ()):
        for token in value.split(","):
            token = token.strip().lower()
            if token:
                named.add(token)
    return named


def drop_names(also_drop: Iterable[str] = ()) -> frozenset[str]:
    """The names :func:`end_to_end` removes: hop-by-hop ones and ``also_drop``, lower-cased.

    Build it once (per listener, not per request) and pass it to every call.
    """
    return HOP_BY_HOP | frozenset(h.lower() for h in also_drop)


def end_to_end(headers: Headers, drop: frozenset[str] = HOP_BY_HOP) -> CIMultiDict[str]:
    """A copy of ``headers`` without the lower-cased names in ``drop`` (see
    :func:`drop_names`; it must hold :data:`HOP_BY_HOP`) and the headers named
    in ``Connection``."""
    if "Connection" in headers:
        drop = drop | connection_listed(headers)
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in drop])


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
