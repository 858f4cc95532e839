"""Deadlines across hops: the time a request has left travels in one header.

The header carries the *remaining* milliseconds (like gRPC's ``grpc-timeout``),
not an absolute time, so hops with skewed clocks still agree. Each hop turns it
into a local monotonic deadline on arrival, bounds its own work by it, and
sends on what is left when it calls the next hop.
"""

from __future__ import annotations

HEADER = "X-Mesh-Deadline-Ms"
_MAX_MS = 24 * 3600 * 1000


def parse_remaining(value: str | None) -> float | None:
    """Header value → seconds left (may be <= 0: already expired); None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if not value.lstrip("-").isdigit() or len(value) > 12:
        return None
    return min(int(value), _MAX_MS) / 1000.0


def format_remaining(seconds: float) -> str:
    """Seconds left (``deadline - now``) → header value: whole ms, never negative."""
    ms = int(seconds * 1000)
    return str(ms) if ms > 0 else "0"  # not max(): see mesh.proxy
