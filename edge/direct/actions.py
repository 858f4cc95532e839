"""What a route the edge answers itself says: a redirect, or a fixed response (pure).

Both are made once, when the config loads, and read by every request of their route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from edge.direct.location import location, split_authority

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def rewrite_prefix(prefix: str, replacement: str, path: str) -> str:
    """``path`` (which ``prefix`` matched on a segment boundary) with that prefix replaced:
    ``/api/users`` → ``/users`` makes ``/api/users/7`` ``/users/7``; the root prefix ``/``
    puts ``replacement`` before the whole path."""
    rest = path[len(prefix) :] if prefix != "/" else path
    out = replacement.rstrip("/") + rest
    return out if out.startswith("/") else "/" + out


@dataclass(frozen=True, slots=True)
class Redirect:
    """Answer with ``code`` and a ``Location``: the request's URL with the parts given here
    replaced (Envoy's ``RedirectAction``). ``path`` replaces the whole path,
    ``prefix_rewrite`` only the route's prefix; neither keeps the path. The query is kept
    unless ``strip_query``.

    The authority: ``host`` (with its own port, if it has one) when given, else the
    request's ``Host``; the request's port is kept only while the scheme stays the same
    (it belongs to the request's scheme); ``port``, when given, replaces whichever.
    A scheme's default port is never written.
    """

    code: int = 301
    scheme: str | None = None
    host: tuple[str, int | None] | None = None
    """(name in lower case, port or None), as :func:`split_authority` reads it."""
    port: int | None = None
    path: str | None = None
    prefix_rewrite: str | None = None
    strip_query: bool = False

    kind: ClassVar[str] = "redirect"

    def location(
        self, request_scheme: str, request_host: str, prefix: str, path: str, query: str
    ) -> str | None:
        """The ``Location`` for a request of ``request_scheme`` with ``Host: request_host``,
        normalised ``path`` (matched by the route's ``prefix``) and raw ``query`` (without
        ``?``); None when the request's ``Host`` is needed and not a valid authority."""
        scheme = self.scheme or request_scheme
        if self.host is not None:
            name, port = self.host
        else:
            authority = split_authority(request_host)
            if authority is None:
                return None
            name, port = authority
            if scheme != request_scheme:
                port = None
        if self.port is not None:
            port = self.port
        if self.path is not None:
            target = self.path
        elif self.prefix_rewrite is not None:
            target = rewrite_prefix(prefix, self.prefix_rewrite, path)
        else:
            target = path
        if query and not self.strip_query:
            target = f"{target}?{query}"
        return location(scheme, name, port, target)

    def describe(self) -> dict[str, Any]:
        return {
            "redirect": {
                "code": self.code,
                "scheme": self.scheme,
                "host": None if self.host is None else _authority(*self.host),
                "port": self.port,
                "path": self.path,
                "prefix_rewrite": self.prefix_rewrite,
                "strip_query": self.strip_query,
            }
        }


def redirect_host(text: str) -> tuple[str, int | None]:
    """A configured redirect ``host`` (``name`` or ``name:port``) as :class:`Redirect` keeps
    it; raises ValueError when it is not a valid authority."""
    authority = split_authority(text)
    if authority is None:
        raise ValueError(f"{text!r} is not a host name or address, with an optional port")
    return authority


def _authority(name: str, port: int | None) -> str:
    return name if port is None else f"{name}:{port}"


@dataclass(frozen=True, slots=True)
class DirectResponse:
    """Answer with ``status`` and ``body`` (Envoy's ``direct_response``, nginx's ``return``):
    ``content_type`` is sent with a body, and nothing else is (beyond the headers the edge
    adds to every answer)."""

    status: int
    body: bytes = b""
    content_type: str | None = None

    kind: ClassVar[str] = "response"

    def describe(self) -> dict[str, Any]:
        return {
            "direct_response": {
                "status": self.status,
                "body_bytes": len(self.body),
                "content_type": self.content_type,
            }
        }


DirectAction = Redirect | DirectResponse
"""What a route the edge answers itself does instead of proxying."""
