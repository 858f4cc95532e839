"""A route's mirror and the decisions about one request (pure).

A request is mirrored when its route has a mirror and a roll of the dice falls
within the mirror's ``percent``. Its body, if any, is sent to the shadow only
when the client declared its length and that length is at most the mirror's
``max_body_size``: such a body is read once, whole, and sent to both the
service and the shadow. A chunked body, or a longer one, is never held back
for a copy: the request goes on streaming, unmirrored (counted as skipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

SHADOW_SUFFIX = "-shadow"


@dataclass(frozen=True, slots=True)
class MirrorPolicy:
    """Where and how much of a route's traffic is copied."""

    service: str
    """The shadow service: its healthy instances in the catalog take the copies."""
    percent: float
    """Share of the route's requests copied, 0 to 100."""
    max_body_size: int
    """Largest request body (by its declared Content-Length) copied along."""
    timeout: float | None
    """Longest a copy may take from its start, answer read to its end; None: as long as
    the request may take (its ``Exchange.timeout``: the route's ``timeout``, else
    ``proxy.response_timeout``)."""
    max_in_flight: int
    """Copies of this route's requests in flight at once, per edge process; one more
    is dropped (and counted)."""

    def chosen(self, roll: float) -> bool:
        """Whether the request whose dice gave ``roll`` (uniform in [0, 1)) is copied."""
        return roll * 100 < self.percent

    def describe(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "percent": self.percent,
            "max_body_size": self.max_body_size,
            "timeout": self.timeout,
            "max_in_flight": self.max_in_flight,
        }


class BodyPlan(Enum):
    """What to do with a chosen request's body."""

    NONE = "none"
    """No body: the copy has none either."""
    BUFFER = "buffer"
    """A body of declared length within the limit: read it once, send it to both."""
    SKIP = "skip"
    """Chunked, or longer than the limit: the request is not copied."""


def body_plan(has_body: bool, content_length: int | None, max_body_size: int) -> BodyPlan:
    """The plan for a request with a body (``has_body``: a positive Content-Length or a
    chunked one) of declared ``content_length`` (None: chunked)."""
    if not has_body:
        return BodyPlan.NONE
    if content_length is None or content_length > max_body_size:
        return BodyPlan.SKIP
    return BodyPlan.BUFFER


def shadow_host(host: str) -> str:
    """``host`` (a ``Host`` value) with ``-shadow`` after its name, before any port, as
    Envoy does: ``orders.example.com`` → ``orders.example.com-shadow``,
    ``orders:8080`` → ``orders-shadow:8080``, ``[::1]:8080`` → ``[::1]-shadow:8080``."""
    name, sep, port = host.rpartition(":")
    # A port follows a name or a bracketed IPv6 literal, never a bare one (``::1``).
    if sep and port.isdigit() and (name.endswith("]") or ":" not in name):
        return f"{name}{SHADOW_SUFFIX}:{port}"
    return host + SHADOW_SUFFIX
