"""Which addresses a list lets through: the pure decision, and the config's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.ip_access.config import IpAccessConfig
from edge.ip_access.policy import AddressPolicy
from tests.edge.refused_config import assert_refused


def policy(allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> AddressPolicy:
    return AddressPolicy.of(IpAccessConfig(allow=allow, deny=deny))


@pytest.mark.parametrize(
    ("allow", "deny", "address", "permitted"),
    [
        ((), (), "203.0.113.9", True),
        (("10.0.0.0/8",), (), "10.1.2.3", True),
        (("10.0.0.0/8",), (), "11.1.2.3", False),
        (("10.0.0.0/8",), ("10.0.0.7",), "10.0.0.7", False),  # deny wins inside allow
        (("10.0.0.0/8",), ("10.0.0.7",), "10.0.0.8", True),
        ((), ("192.0.2.0/24",), "192.0.2.200", False),
        ((), ("192.0.2.0/24",), "198.51.100.1", True),
        (("2001:db8::/32",), (), "2001:db8::1", True),
        (("2001:db8::/32",), (), "2001:db9::1", False),
        (("10.0.0.0/8",), (), "::ffff:10.9.9.9", True),  # IPv4-mapped: matched as IPv4
        ((), ("10.0.0.0/8",), "::ffff:10.9.9.9", False),
        (("0.0.0.0/0",), (), "::1", False),  # an IPv4 list says nothing of IPv6
        (("10.0.0.0/8",), (), "unknown", False),  # unreadable: an allow list refuses
        ((), ("10.0.0.0/8",), "unknown", True),  # ... a deny-only list lets it through
        (("127.0.0.1",), (), "127.0.0.1", True),
    ],
)
def test_permits(
    allow: tuple[str, ...], deny: tuple[str, ...], address: str, permitted: bool
) -> None:
    p = policy(allow, deny)
    assert p.permits(address) is permitted
    assert p.permits(address) is permitted  # remembered: the same answer


def test_restricts() -> None:
    assert not policy().restricts
    assert policy(deny=("10.0.0.0/8",)).restricts


def test_the_memo_stays_bounded() -> None:
    p = policy(allow=("10.0.0.0/8",))
    for i in range(70_000):
        p.permits(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(p._decided) <= 65_536
    assert p.permits("10.0.0.1") and not p.permits("11.0.0.1")


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ("ip_access: {allow: [10.0.0.1/8]}", "ip_access.allow", "has host bits set"),
        ("ip_access: {deny: [nope]}", "ip_access.deny", "does not appear to be an IPv4 or IPv6"),
        ("ip_access: {allowed: [10.0.0.0/8]}", "ip_access.allowed", "unknown key"),
        (
            "routes: [{prefix: /a, service: a, ip_access: {allow: [300.0.0.0/8]}}]",
            "routes[0].ip_access.allow",
            "300.0.0.0/8",
        ),
    ],
)
def test_bad_lists_name_the_key(tmp_path: Path, section: str, key: str, problem: str) -> None:
    assert_refused(tmp_path, section, key, problem)
