"""The ``meshgate`` command: clear --help, and bad configuration exits 2 with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from demo.processes import meshgate_argv


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(meshgate_argv(*args), capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("command", [(), ("edge",), ("sidecar",), ("demo",)])
def test_help_is_clear(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: meshgate")
    assert result.stderr == ""


EDGE_CASES = [
    (
        "routes:\n  - prefix: /api\n    service: users\n    prefx: 1\n",
        "routes[0].prefx",
        "unknown key",
    ),
    ("routes:\n  - prefix: api\n    service: users\n", "routes[0].prefix", "must start with '/'"),
    (
        "routes:\n  - service: users\n",
        "routes[0]",
        "give exactly one of prefix and path (found neither)",
    ),
    ("proxy:\n  connect_timeout: soon\n", "proxy.connect_timeout", "expected a duration"),
    ("listen:\n  port: 99999\n", "listen.port", "less than or equal to 65535"),
    (
        "consul:\n  address: ${MESHGATE_TEST_UNSET_VAR}\n",
        "consul.address",
        "MESHGATE_TEST_UNSET_VAR",
    ),
    ("routes: [\n", "", "not valid YAML at line"),
    ("- just\n- a list\n", "", "top level must be a mapping"),
]


@pytest.mark.parametrize(("text", "key_path", "problem"), EDGE_CASES)
def test_bad_edge_config_exits_2_naming_file_key_and_problem(
    tmp_path: Path, text: str, key_path: str, problem: str
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(text)
    result = run("edge", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0]
    if key_path:
        assert f"{config}: {key_path}: " in lines[0]
    assert problem in lines[0]


def test_bad_sidecar_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text("service:\n  name: users\napp:\n  health_path: health\n")
    result = run("sidecar", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{config}: app.health_path: must start with '/'" in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = run("edge", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_python_m_meshgate_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meshgate", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "edge" in result.stdout and "sidecar" in result.stdout
