"""Whether a response to a GET may be stored, and how (RFC 9111 §3 for a shared cache; pure).

Stored only when all of these hold, checked in this order (the first that
fails is the reason given, see :data:`edge.cache.status.REASONS`):

1. the client's request did not say ``Cache-Control: no-store``;
2. the status is one a cache may store on its own: 200, 203, 204, 300, 301,
   308, 404, 405, 410, 414 or 501 (never a 206 part, a 302 or a 5xx);
3. the response says neither ``no-store`` nor ``private``;
4. for a request with credentials (``Authorization``, an API key, a
   ``Cookie``, or a caller the edge authenticated), the response says
   ``public``, ``s-maxage`` or ``must-revalidate`` (RFC 9111 §3.5);
5. it sets no cookie (``Set-Cookie``), as nginx does not cache such answers;
6. it does not say ``Vary: *``;
7. its tags (the route's ``tag_header``) can all be kept (:mod:`edge.cache.tags`);
8. its declared body is at most the route's ``max_body_size``;
9. it gives its freshness (``s-maxage``, ``max-age``, ``Expires``, or
   ``no-cache``: validated before every use) or the route has a ``ttl``;
10. it can serve some later request: fresh on arrival, or with a validator
   (``ETag``, ``Last-Modified``) to revalidate it by, or in a
   ``stale-if-error`` window.

Its directives (3, 4, 9, 10) are those of the first field on the route's target list
(``targeted_fields``, e.g. ``Meshgate-Cache-Control``) that it carries with a valid
value, and then ``Cache-Control`` and ``Expires`` are ignored; else those of
``Cache-Control`` (:mod:`edge.cache.targeted`).
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDict

from edge.cache.control import ResponseControl, response_control
from edge.cache.freshness import Timing, explicit_lifetime, initial_age, stale_windows
from edge.cache.policy import CachePolicy
from edge.cache.tags import parse_tags
from edge.cache.targeted import targeted_control
from edge.cache.vary import vary_names
from mesh.http.cache_control import digits
from mesh.http.dates import http_date

CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
"""Statuses RFC 9110 §15.1 calls heuristically cacheable: stored with explicit freshness
or the route's ``ttl``."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a response: store it (``reason`` None) or not (and why)."""

    reason: str | None
    timing: Timing | None = None
    shared: bool = False
    """It may serve requests with credentials (``public``, ``s-maxage``, ``must-revalidate``)."""
    vary: tuple[str, ...] = ()
    """Lower-cased names of the request headers it varies on."""
    tags: tuple[str, ...] = ()
    """Its tags (:mod:`edge.cache.tags`)."""

    @property
    def stored(self) -> bool:
        return self.reason is None


def verdict(
    status: int,
    headers: CIMultiDict[str],
    policy: CachePolicy,
    *,
    credentialed: bool,
    request_no_store: bool,
    requested: float,
    received: float,
) -> Verdict:
    """The verdict on a response of ``status`` with end-to-end ``headers`` to a GET sent at
    ``requested`` (wall clock), whose head came at ``received``; see the module docstring."""
    if request_no_store:
        return Verdict("request-no-store")
    if status not in CACHEABLE_STATUSES:
        return Verdict("status")
    control = targeted_control(headers, policy.targeted) if policy.targeted else None
    expires: str | None = None  # a targeted field sets the policy alone (RFC 9213 §2.2)
    if control is None:
        control = response_control(headers.getall("Cache-Control", ()))
        expires = headers.get("Expires")
    if control.no_store:
        return Verdict("no-store")
    if control.private:
        return Verdict("private")
    if credentialed and not control.shared:
        return Verdict("authorization")
    if "Set-Cookie" in headers:
        return Verdict("set-cookie")
    names = vary_names(headers.getall("Vary", ()))
    if names is None:
        return Verdict("vary-star")
    tags: tuple[str, ...] = ()
    if policy.tag_header is not None:
        named = parse_tags(headers.getall(policy.tag_header, ()))
        if named is None:
            return Verdict("tags")
        tags = named
    length = headers.get("Content-Length")
    if length is not None and digits(length) and int(length) > policy.max_body_size:
        return Verdict("too-large")
    found = timing(control, expires, headers, policy, requested, received)
    if found is None:
        return Verdict("no-freshness")
    validated = "ETag" in headers or "Last-Modified" in headers
    if not found.useful(received, validated):
        return Verdict("expired")
    return Verdict(None, found, control.shared, names, tags)


def timing(
    control: ResponseControl,
    expires: str | None,
    headers: CIMultiDict[str],
    policy: CachePolicy,
    requested: float,
    received: float,
) -> Timing | None:
    """The :class:`Timing` of a response with these headers, its directives ``control``
    and ``expires`` its ``Expires`` as it counts (None: absent or ignored), or None when
    neither it nor the route gives a freshness lifetime."""
    date = http_date(headers.get("Date"))
    lifetime = explicit_lifetime(control, expires, date, received)
    if lifetime is None:
        if policy.ttl is not None:
            lifetime = policy.ttl
        elif control.no_cache:
            lifetime = 0.0  # validated before every use: no lifetime needed
        else:
            return None
    while_revalidate, if_error = stale_windows(
        control, policy.stale_while_revalidate, policy.stale_if_error
    )
    return Timing(
        lifetime=lifetime,
        initial_age=initial_age(headers.get("Age"), date, requested, received),
        received=received,
        while_revalidate=while_revalidate,
        if_error=if_error,
        revalidate_always=control.no_cache,
    )
