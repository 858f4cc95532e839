"""Canary releases by instance tag (pure): a share of a route's requests goes to the
service's instances carrying a tag, the rest to the others.

A request's side is chosen once, before any instance is picked: with the route's
``weight`` percent chance the canary side (instances tagged ``tag``), else the stable
side (the others). A request may name its side in ``header`` when the route has one
(``always``: canary, ``never``: stable), for testing a canary before it takes traffic.
If the chosen side has no healthy instance, the request goes to the other side rather
than failing: a canary that is down sends its share back to stable, and the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.snapshot import Instance

CANARY = "canary"
STABLE = "stable"


@dataclass(frozen=True, slots=True)
class Canary:
    tag: str
    """Instances with this Consul tag are the canary."""
    weight: float
    """Percent of requests (0 to 100) sent to the canary."""
    header: str | None = None
    """Request header that picks the side (``always``/``never``); None: none does."""

    def choose(self, header_value: str | None, roll: float) -> CanaryChoice:
        """:meth:`side`, bound to this canary for the proxy."""
        return CanaryChoice(self, self.side(header_value, roll))

    def side(self, header_value: str | None, roll: float) -> str:
        """:data:`CANARY` or :data:`STABLE` for a request whose ``header`` carried
        ``header_value`` (None when absent or not configured); ``roll`` is uniform in
        [0, 1), drawn per request."""
        if header_value is not None:
            value = header_value.strip().lower()
            if value == "always":
                return CANARY
            if value == "never":
                return STABLE
        return CANARY if roll * 100 < self.weight else STABLE

    def instances(self, healthy: tuple[Instance, ...], side: str) -> tuple[Instance, ...]:
        """The healthy instances of ``side``, or of the other side when it has none."""
        tag = self.tag
        canary = tuple(i for i in healthy if tag in i.tags)
        stable = tuple(i for i in healthy if tag not in i.tags)
        chosen, other = (canary, stable) if side == CANARY else (stable, canary)
        return chosen or other


@dataclass(frozen=True, slots=True)
class CanaryChoice:
    """One request's side of a canary (set on the exchange by routing, read by the proxy)."""

    canary: Canary
    side: str

    def instances(self, healthy: tuple[Instance, ...]) -> tuple[Instance, ...]:
        return self.canary.instances(healthy, self.side)
