"""Whether a client address may call: one allow/deny list, decided per address.

A decision is remembered per address string (bounded), so a steady client costs a
dict look-up. An address that cannot be read (not an IP address) is refused by a
policy with an ``allow`` list, whose point is to let only known callers in, and
let through by a deny-only one. IPv4 addresses written IPv6-mapped
(``::ffff:10.0.0.1``, as a dual-stack listener reports them) are matched as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from edge.ip_access.config import IpAccessConfig, Network

_MEMO_MAX = 65_536


class AddressPolicy:
    def __init__(self, allow: Iterable[Network], deny: Iterable[Network]) -> None:
        self._allow = tuple(allow)
        self._deny = tuple(deny)
        self._decided: dict[str, bool] = {}

    @classmethod
    def of(cls, config: IpAccessConfig) -> AddressPolicy:
        return cls(*config.networks())

    @property
    def restricts(self) -> bool:
        """False when both lists are empty (every address may call)."""
        return bool(self._allow or self._deny)

    def permits(self, address: str) -> bool:
        decided = self._decided.get(address)
        if decided is None:
            if len(self._decided) >= _MEMO_MAX:
                self._decided.clear()
            decided = self._decided[address] = self._decide(address)
        return decided

    def _decide(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return not self._allow
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self._deny):
            return False
        return not self._allow or any(ip in net for net in self._allow)
