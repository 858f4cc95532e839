"""free_port: ports the kernel does not hand to others, in turn, from a share of their own
per test worker; the temporary files and directories the managed processes make are
removed when they stop."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

import demo.processes as processes
from demo.processes import (
    DEFAULT_PORT_RANGE,
    PORT_RANGE_ENV,
    ConsulAgent,
    ManagedProcess,
    format_port_range,
    free_port,
    port_range,
    port_share,
)


def _ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_ports_are_outside_the_kernels_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_RANGE_ENV, raising=False)
    ephemeral = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert all(p in DEFAULT_PORT_RANGE for p in ports)
    assert not any(p in ephemeral for p in ports)


def test_a_port_is_never_handed_out_twice_even_when_nobody_bound_it() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_ports_are_handed_out_in_turn_and_come_back_only_after_all_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three ports in a row that are all free now: one that an earlier test's connection
    # left in TIME_WAIT cannot be bound, and free_port rightly skips it (a CI run saw
    # [base, base, base + 2]).
    base = next(
        b for b in (free_port() for _ in range(50)) if _bindable(b + 1) and _bindable(b + 2)
    )
    monkeypatch.setenv(PORT_RANGE_ENV, f"{base}-{base + 2}")
    monkeypatch.setattr(processes, "_next", {})
    first = [free_port() for _ in range(3)]
    assert sorted(first) == [base, base + 1, base + 2]
    assert [free_port() for _ in range(3)] == first  # the same turn again


def test_a_port_someone_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = free_port()
    # A fresh process would not know this was handed out: only the bind check protects it.
    monkeypatch.setenv(PORT_RANGE_ENV, f"{taken}-{taken + 1}")
    monkeypatch.setattr(processes, "_next", {})
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        assert {free_port() for _ in range(3)} == {taken + 1}
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", taken + 1))
            other.listen()
            with pytest.raises(RuntimeError, match=f"no free TCP port left in {taken}-{taken + 1}"):
                free_port()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, DEFAULT_PORT_RANGE),
        ("", DEFAULT_PORT_RANGE),
        ("20000-20999", range(20000, 21000)),
        ("30000-30000", range(30000, 30001)),
    ],
)
def test_the_range_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: range
) -> None:
    if value is None:
        monkeypatch.delenv(PORT_RANGE_ENV, raising=False)
    else:
        monkeypatch.setenv(PORT_RANGE_ENV, value)
    assert port_range() == expected


@pytest.mark.parametrize("value", ["20000", "b-c", "21000-20000", "80-90", "20000-70000", "-5"])
def test_a_bad_range_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(PORT_RANGE_ENV, value)
    with pytest.raises(ValueError, match=f"{PORT_RANGE_ENV}={value!r}: expected LOW-HIGH"):
        port_range()


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shares_are_disjoint_contiguous_and_cover_the_range(count: int) -> None:
    shares = [port_share(DEFAULT_PORT_RANGE, i, count) for i in range(count)]
    assert [p for share in shares for p in share] == list(DEFAULT_PORT_RANGE)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert all(port_range_of(share) == share for share in shares)
    with pytest.raises(ValueError):
        port_share(DEFAULT_PORT_RANGE, count, count)


def port_range_of(share: range) -> range:
    """``share`` written as the variable says it and read back."""
    low, high = format_port_range(share).split("-")
    return range(int(low), int(high) + 1)


def test_this_test_worker_looks_in_its_own_share() -> None:
    """The suite's conftest gives each parallel worker its share (none when run alone)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        assert port_range() == DEFAULT_PORT_RANGE
    else:
        count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        assert port_range() == port_share(DEFAULT_PORT_RANGE, int(worker[2:]), count)


def test_a_log_file_of_its_own_is_removed_when_the_process_stops() -> None:
    proc = ManagedProcess("sleeper", ["sleep", "30"]).start()
    assert proc.log_path is not None and proc.log_path.exists()
    proc.stop(timeout=5)
    assert not proc.alive()
    assert not proc.log_path.exists()
    assert proc.log_tail() == ""


def test_a_log_file_given_by_the_caller_stays(tmp_path: Path) -> None:
    log = tmp_path / "sleeper.log"
    proc = ManagedProcess("sleeper", ["sh", "-c", "echo started; sleep 30"], log_path=log)
    proc.start()
    processes.wait_until(lambda: log.read_text() != "", 5, "the first line")
    proc.stop(timeout=5)
    assert log.read_text() == "started\n"
    assert proc.log_tail() == "started"


@pytest.mark.integration
def test_a_consul_agent_removes_its_temporary_directory_when_stopped() -> None:
    agent = ConsulAgent().start()
    data_dir = Path(str(agent.data_dir))
    log = agent.process.log_path if agent.process is not None else None
    assert data_dir.is_dir() and log is not None and log.exists()
    agent.stop()
    assert not data_dir.exists() and not log.exists()
    assert agent.data_dir is None


@pytest.mark.integration
def test_a_consul_agent_keeps_a_directory_it_was_given(tmp_path: Path) -> None:
    agent = ConsulAgent(data_dir=str(tmp_path)).start()
    agent.stop()
    assert (tmp_path / "ports.hcl").exists()
