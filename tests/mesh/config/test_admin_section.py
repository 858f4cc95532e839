"""The ``admin`` section's token keys (mesh/config/sections.py: AdminConfig), in the edge's
and the sidecar's files: the token is read at load, and every way it cannot be is a
refusal naming the config file, the key and the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.config import EdgeConfig, load_edge_config
from sidecar.config import SidecarConfig, load_sidecar_config
from tests.edge.refused_config import assert_refused

TOKEN = "3f9a1c0e5b7d2a4f6e8c0b1d3a5f7e9c"

LOADERS: dict[str, tuple[str, Callable[[Path], EdgeConfig | SidecarConfig]]] = {
    "edge": ("", load_edge_config),
    "sidecar": ("service: {name: users}\n", load_sidecar_config),
}


@pytest.fixture(params=sorted(LOADERS))
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def refused(tmp_path: Path, role: str, admin: str, key_path: str, problem: str) -> None:
    base, load = LOADERS[role]
    assert_refused(tmp_path, f"{base}admin: {admin}", key_path, problem, load)


def test_no_token_by_default(tmp_path: Path, role: str) -> None:
    base, load = LOADERS[role]
    path = tmp_path / "config.yaml"
    path.write_text(base or "{}")
    config = load(path)
    assert config.admin.token is None
    assert config.admin.protect_metrics is False


def test_the_token_is_read_at_load_and_never_dumped(tmp_path: Path, role: str) -> None:
    secret = tmp_path / "admin-token"
    secret.write_text(TOKEN + "\n")
    base, load = LOADERS[role]
    path = tmp_path / "config.yaml"
    path.write_text(f"{base}admin: {{token_file: {secret}, protect_metrics: true}}\n")
    config = load(path)
    admin = config.admin
    assert admin.token is not None and admin.token.secret == TOKEN.encode()
    assert admin.protect_metrics is True
    # What reloads compare, logs print and views could show holds the path, not the token.
    assert TOKEN not in str(config.model_dump())
    assert TOKEN not in repr(config)
    assert admin.model_dump()["token_file"] == str(secret)


def test_the_token_from_an_environment_variable(
    tmp_path: Path, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHGATE_ADMIN_TOKEN", TOKEN)
    base, load = LOADERS[role]
    path = tmp_path / "config.yaml"
    path.write_text(f"{base}admin: {{token_env: MESHGATE_ADMIN_TOKEN}}\n")
    token = load(path).admin.token
    assert token is not None and token.secret == TOKEN.encode()


def test_refusals(tmp_path: Path, role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "absent"
    refused(
        tmp_path,
        role,
        f"{{token_file: {missing}}}",
        "admin.token_file",
        f"cannot read {missing}: No such file or directory",
    )
    refused(
        tmp_path,
        role,
        f"{{token_file: {tmp_path}}}",
        "admin.token_file",
        f"cannot read {tmp_path}: Is a directory",
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    refused(
        tmp_path, role, f"{{token_file: {empty}}}", "admin.token_file", f"the file {empty} is empty"
    )
    short = tmp_path / "short"
    short.write_text("secret")
    refused(tmp_path, role, f"{{token_file: {short}}}", "admin.token_file", "at least 16")
    monkeypatch.delenv("MESHGATE_ADMIN_TOKEN", raising=False)
    refused(
        tmp_path,
        role,
        "{token_env: MESHGATE_ADMIN_TOKEN}",
        "admin.token_env",
        "the environment variable MESHGATE_ADMIN_TOKEN is not set",
    )
    monkeypatch.setenv("MESHGATE_ADMIN_TOKEN", "")
    refused(
        tmp_path,
        role,
        "{token_env: MESHGATE_ADMIN_TOKEN}",
        "admin.token_env",
        "$MESHGATE_ADMIN_TOKEN is empty",
    )
    refused(tmp_path, role, "{token_env: 'A TOKEN'}", "admin.token_env", "should match pattern")
    monkeypatch.setenv("MESHGATE_ADMIN_TOKEN", TOKEN)
    secret = tmp_path / "admin-token"
    secret.write_text(TOKEN)
    refused(
        tmp_path,
        role,
        f"{{token_file: {secret}, token_env: MESHGATE_ADMIN_TOKEN}}",
        "admin",
        "set either token_file or token_env, not both",
    )
    refused(
        tmp_path,
        role,
        "{protect_metrics: true}",
        "admin",
        "protect_metrics needs a token (token_file or token_env)",
    )
    # The token itself is no key: a file that holds it is refused.
    refused(tmp_path, role, f"{{token: {TOKEN}}}", "admin.token", "unknown key")
