"""``ip_access``: which client addresses may call the edge, or one route."""

from __future__ import annotations

import ipaddress

from pydantic import field_validator

from mesh.config.types import Frozen

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """``10.0.0.0/8``, ``2001:db8::/32`` or one address (``10.1.2.3``: that address alone).

    Raises ValueError naming the problem, e.g. host bits set (``10.0.0.1/8``)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


class IpAccessConfig(Frozen):
    """Addresses allowed and denied. ``deny`` wins; with ``allow`` listed, every other
    address is refused. Both empty: every address may call."""

    allow: tuple[str, ...] = ()
    """Networks or addresses that may call (empty: any address not denied)."""
    deny: tuple[str, ...] = ()
    """Networks or addresses that may not, even when inside ``allow``."""

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            parse_network(text)
        return value

    def networks(self) -> tuple[tuple[Network, ...], tuple[Network, ...]]:
        """``(allow, deny)`` parsed."""
        return tuple(map(parse_network, self.allow)), tuple(map(parse_network, self.deny))
