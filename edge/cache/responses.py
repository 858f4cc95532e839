"""The client's answer made from a stored response: a hit, a HEAD, or a 304.

The stored headers go out as stored (the service's ``Date`` among them), with
``Age`` (whole seconds), the cache's ``Cache-Status`` member and whatever the
edge adds to every answer (request id, CORS, rate-limit and header changes:
:meth:`mesh.exchange.Exchange.apply_response_headers`). The edge's gzip
applies as to a relayed answer: the cache stores the service's bytes, and the
compression decides per client; the gzipped body is kept with the entry the
first time a client takes it, so later hits do not compress it again.

A client's ``If-None-Match`` / ``If-Modified-Since`` that the stored 2xx meets
is answered 304 with the headers RFC 9110 §15.4.5 asks for (those a 200 would
have had: ``Vary`` and a weak ``ETag`` when the 200 would be gzipped).

A GET with a ``Range`` of a stored 200 gets a 206 of that range, a 416, or the
whole answer (:mod:`edge.cache.ranges`); a part is sent as stored, never gzipped
(its ``Content-Range`` counts the stored bytes).
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from edge.cache.conditional import not_modified
from edge.cache.ranges import (
    UNSATISFIABLE,
    content_range,
    if_range_holds,
    requested_range,
    unsatisfied_range,
)
from edge.cache.status import HEADER, appended
from edge.cache.store import CacheStore, Entry
from mesh.exchange import Exchange
from mesh.http.compression import ResponseCompression

NOT_MODIFIED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Cache-Control",
        "Content-Location",
        "Date",
        "ETag",
        "Expires",
        "Last-Modified",
        "Vary",
        "Age",
        HEADER,
    )
)
"""What a 304 carries of the headers a 200 would have had (lower-cased)."""


def stored_response(
    ex: Exchange, entry: Entry, now: float, member: str, store: CacheStore
) -> web.Response:
    """The answer to ``ex`` from ``entry`` at ``now`` (wall clock), its ``Cache-Status``
    member ``member``; ``store`` keeps the gzipped body with the entry."""
    headers = _answer_headers(entry, now, member)
    request = ex.request
    body = entry.body
    unmodified = not_modified(request.headers, entry.status, entry.etag, entry.last_modified)
    gzip = ex.compression
    if gzip is not None and not gzip.decide(
        request.method,
        request.headers.get("Accept-Encoding"),
        entry.status,
        headers,
        len(body),
        sent=not unmodified,
    ):
        gzip = None
    if unmodified:
        kept = CIMultiDict((k, v) for k, v in headers.items() if k.lower() in NOT_MODIFIED_HEADERS)
        response = web.Response(status=304, headers=kept)
    else:
        if gzip is not None:
            body = _gzipped(entry, gzip, store)
            headers["Content-Encoding"] = "gzip"
        response = web.Response(
            status=entry.status, reason=entry.reason, body=body, headers=headers
        )
    ex.apply_response_headers(response)
    return response


def ranged_response(
    ex: Exchange, entry: Entry, now: float, member: str, store: CacheStore
) -> web.Response:
    """The answer to ``ex``, a GET with a ``Range``, from ``entry``, a stored 200 (see
    :func:`stored_response` for the rest)."""
    request = ex.request
    field = request.headers.get("Range", "")
    length = len(entry.body)
    wanted = requested_range(field, length)
    if (
        wanted is None
        or not if_range_holds(request.headers.get("If-Range"), entry.etag, entry.last_modified)
        or not_modified(request.headers, entry.status, entry.etag, entry.last_modified)
    ):
        return stored_response(ex, entry, now, member, store)
    if wanted == UNSATISFIABLE:
        response = ex.problem(
            416,
            "Range not satisfiable",
            f"{field.strip()!r} holds no byte of the {length} there are",
            slug="range-not-satisfiable",
            headers={"Content-Range": unsatisfied_range(length), HEADER: member},
        )
    else:
        first, last = wanted
        headers = _answer_headers(entry, now, member)
        headers.popall("Content-Range", None)
        headers["Content-Range"] = content_range(first, last, length)
        body = entry.body[first : last + 1]
        response = web.Response(status=206, body=body, headers=headers)
    ex.apply_response_headers(response)
    return response


def _answer_headers(entry: Entry, now: float, member: str) -> CIMultiDict[str]:
    """An answer's headers from ``entry`` at ``now``: as stored, with ``Age`` and the
    cache's ``Cache-Status`` member."""
    headers = CIMultiDict(entry.headers)
    headers["Age"] = str(int(entry.timing.age(now)))
    headers[HEADER] = appended(headers.get(HEADER), member)
    return headers


def _gzipped(entry: Entry, gzip: ResponseCompression, store: CacheStore) -> bytes:
    """``entry``'s body gzipped at ``gzip``'s level: kept from an earlier hit, or made now
    and kept."""
    kept = entry.gzipped
    if kept is not None and kept[0] == gzip.level:
        return kept[1]
    data = gzip.gzip(entry.body)
    store.keep_gzipped(entry, gzip.level, data)
    return data
