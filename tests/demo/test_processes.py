"""free_port: ports the kernel does not hand to others, never the same one twice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import demo.processes as processes
from demo.processes import FREE_PORT_RANGE, free_port


def _ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_ports_are_outside_the_kernels_ephemeral_range() -> None:
    ephemeral = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert all(p in FREE_PORT_RANGE for p in ports)
    assert not any(p in ephemeral for p in ports)


def test_a_port_is_never_handed_out_twice_even_when_nobody_bound_it() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_port_someone_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    taken, spare = free_port(), free_port()
    # A fresh process would not know these were handed out: only the bind check protects them.
    monkeypatch.setattr(processes, "_handed_out", set())
    monkeypatch.setattr(processes, "FREE_PORT_RANGE", (taken, spare))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        assert free_port() == spare
        with pytest.raises(RuntimeError, match="no free TCP port"):
            free_port()
