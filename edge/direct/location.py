"""Location URLs for the edge's redirects, from a request's ``Host`` read safely.

A client's ``Host`` goes into a ``Location`` only when it is a plain host name,
IPv4 or bracketed IPv6 address with an optional port: nothing else (no user
info, no path, no CR or LF) can reach the header through it.
"""

from __future__ import annotations

import re

_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?\Z")


def split_authority(host: str) -> tuple[str, int | None] | None:
    """``Host`` → (its name in lower case, IPv6 in brackets; its port or None), or None
    when it is not a valid authority (empty, user info, a path, a port past 65535, ...)."""
    found = _HOST.match(host)
    if found is None:
        return None
    port_text = found.group(1)
    port = int(port_text) if port_text is not None else None
    if port is not None and not 0 < port < 65536:
        return None
    name = host[: len(host) - len(port_text) - 1] if port_text is not None else host
    return name.lower(), port


_DEFAULT_PORTS = {"http": 80, "https": 443}


def location(scheme: str, name: str, port: int | None, target: str) -> str:
    """``scheme://name[:port]target``; the port is left out when None or the scheme's
    default. ``name`` and ``target`` must be safe already (:func:`split_authority`, a
    normalised path)."""
    authority = name if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
    return f"{scheme}://{authority}{target}"
