"""free_port: ports the kernel does not hand to others, never the same one twice; the
temporary files and directories the managed processes make are removed when they stop."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import demo.processes as processes
from demo.processes import FREE_PORT_RANGE, ConsulAgent, ManagedProcess, free_port


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
