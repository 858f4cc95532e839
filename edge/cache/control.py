"""``Cache-Control``, read as a shared cache reads it (RFC 9111 §5.2; pure).

Only the response directives a shared cache acts on are kept
(:class:`ResponseControl`); of the request's, only ``no-store`` (the edge does
not let a client's ``no-cache`` or ``max-age=0`` send its requests past the
cache: any client could then send every request to the service).

The directives are split by :mod:`mesh.http.cache_control` (forgiving, as RFC
9111 asks: names are case-insensitive, values may be quoted, a directive given
twice counts once, its first value); here a
qualified ``private="Set-Cookie"`` or ``no-cache="..."`` is taken as the
unqualified directive, and a delta-seconds argument that cannot be read makes
the response stale (``max-age=abc`` is ``max-age=0``) rather than fresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mesh.http.cache_control import MAX_DELTA_SECONDS, delta_seconds, digits, directives


def _optional_seconds(argument: str | None, present: bool) -> int | None:
    """An extension's delta-seconds (``stale-while-revalidate=N``): None when absent or
    unreadable (the extension is then ignored, not taken as 0)."""
    if not present or argument is None or not digits(argument):
        return None
    return min(int(argument), MAX_DELTA_SECONDS)


@dataclass(frozen=True, slots=True)
class ResponseControl:
    """A response's ``Cache-Control``, as a shared cache reads it."""

    no_store: bool = False
    no_cache: bool = False
    """Never used without validating it first (qualified or not)."""
    private: bool = False
    """For one user: a shared cache never stores it (qualified or not)."""
    public: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    max_age: int | None = None
    s_maxage: int | None = None
    stale_while_revalidate: int | None = None
    """RFC 5861: seconds past freshness during which it may be served while revalidated."""
    stale_if_error: int | None = None
    """RFC 5861: seconds past freshness during which it may be served when revalidating
    fails."""

    @property
    def shared(self) -> bool:
        """Whether the response says a shared cache may use it for requests with
        credentials: ``public``, ``s-maxage`` or ``must-revalidate`` (RFC 9111 §3.5)."""
        return self.public or self.s_maxage is not None or self.must_revalidate

    @property
    def forbids_stale(self) -> bool:
        """Whether it may never be served stale: ``no-cache``, ``must-revalidate`` or
        ``proxy-revalidate`` (RFC 9111 §4.2.4)."""
        return self.no_cache or self.must_revalidate or self.proxy_revalidate


def response_control(values: Iterable[str]) -> ResponseControl:
    """The :class:`ResponseControl` of a response's ``Cache-Control`` field values."""
    found = directives(values)
    if not found:
        return _NONE
    return ResponseControl(
        no_store="no-store" in found,
        no_cache="no-cache" in found,
        private="private" in found,
        public="public" in found,
        must_revalidate="must-revalidate" in found,
        proxy_revalidate="proxy-revalidate" in found,
        max_age=delta_seconds(found["max-age"]) if "max-age" in found else None,
        s_maxage=delta_seconds(found["s-maxage"]) if "s-maxage" in found else None,
        stale_while_revalidate=_optional_seconds(
            found.get("stale-while-revalidate"), "stale-while-revalidate" in found
        ),
        stale_if_error=_optional_seconds(found.get("stale-if-error"), "stale-if-error" in found),
    )


_NONE = ResponseControl()


def request_no_store(values: Iterable[str]) -> bool:
    """Whether a request's ``Cache-Control`` says ``no-store`` (its answer is not stored)."""
    return "no-store" in directives(values)
