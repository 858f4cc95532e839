"""Which protocol switch (``Upgrade``, RFC 9110 §7.8) a request asks for, if one is allowed.

Pure functions over request headers. A request asks to switch protocols when it
carries an ``Upgrade`` header *and* lists ``upgrade`` in ``Connection`` (a sender of
``Upgrade`` must do both; ``Upgrade`` alone is an ordinary hop-by-hop header, dropped
like any other). Only protocols a listener allows are tunnelled; a request for any
other is proxied as a plain request without its ``Upgrade``, which RFC 9110 lets a
server do ("a server MAY ignore a received Upgrade header field").
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import istr

from mesh.http.headers import Headers, connection_listed

UPGRADE = istr("Upgrade")

DEFAULT_PROTOCOLS = frozenset({"websocket"})
"""What listeners allow unless configured otherwise: WebSocket (RFC 6455)."""


def allowed_protocols(names: Iterable[str]) -> frozenset[str]:
    """Protocol names as :func:`requested_upgrade` compares them (lower case)."""
    return frozenset(name.strip().lower() for name in names if name.strip())


def requested_upgrade(headers: Headers, allowed: frozenset[str]) -> str | None:
    """The ``Upgrade`` token to send upstream, or None when the request asks for no
    allowed switch.

    ``allowed`` holds lower-case protocol names (:func:`allowed_protocols`). The
    request's tokens are tried in its order of preference; a token may carry a
    version (``websocket/13``), matched by its name. The token goes upstream as the
    client wrote it.
    """
    values = headers.getall(UPGRADE, ())
    if not values or not allowed or "upgrade" not in connection_listed(headers):
        return None
    for token in ",".join(values).split(","):
        token = token.strip()
        if token.partition("/")[0].lower() in allowed:
            return token
    return None
