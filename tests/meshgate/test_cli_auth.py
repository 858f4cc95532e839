"""``meshgate token`` and ``meshgate apikey``: usage, output and failures."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from demo.auth_service import key_id_for, load_or_create_key_file, public_jwk
from demo.processes import RedisServer, free_port, meshgate_argv


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(meshgate_argv(*args), capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(
    "command",
    [("token",), ("apikey",), ("apikey", "create"), ("apikey", "revoke"), ("apikey", "list")],
)
def test_help(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: meshgate")


def test_token_is_signed_with_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    key = load_or_create_key_file(key_file)
    result = run(
        "token", "--sub", "alice", "--role", "user", "--role", "ops", "--key", str(key_file)
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.get_unverified_header(token)["kid"] == key_id_for(key)
    claims = jwt.decode(
        token,
        jwt.PyJWK(public_jwk(key, key_id_for(key))),
        algorithms=["ES256"],
        audience="meshgate",
        issuer="http://auth.demo",
    )
    assert (claims["sub"], claims["roles"]) == ("alice", ["user", "ops"])
    assert claims["exp"] - claims["iat"] == 900


def test_token_needs_a_usable_key(tmp_path: Path) -> None:
    result = run("token", "--sub", "alice")
    assert result.returncode == 2 and "--key FILE is required" in result.stderr
    result = run("token", "--sub", "alice", "--key", str(tmp_path / "missing.pem"))
    assert result.returncode == 2 and "cannot use key file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


def test_apikey_commands(redis_url: str) -> None:
    created = run("apikey", "--redis", redis_url, "create", "--consumer", "acme", "--plan", "gold")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("mgk_") and "shown only this once" in created.stderr
    table = run("apikey", "--redis", redis_url, "list")
    assert "acme" in table.stdout and "gold" in table.stdout and key not in table.stdout
    assert run("apikey", "--redis", redis_url, "revoke", key).returncode == 0
    again = run("apikey", "--redis", redis_url, "revoke", key)
    assert again.returncode == 1 and "no such API key" in again.stderr
    assert json.loads(run("apikey", "--redis", redis_url, "list", "--json").stdout) == []


def test_apikey_bad_input_and_unreachable_redis(redis_url: str) -> None:
    bad = run("apikey", "--redis", redis_url, "create", "--consumer", "two words")
    assert bad.returncode == 2 and "consumer 'two words'" in bad.stderr
    bad = run("apikey", "--redis", redis_url, "revoke", "nonsense")
    assert bad.returncode == 2 and "expected an API key" in bad.stderr
    down = run("apikey", "--redis", f"redis://127.0.0.1:{free_port()}/0", "list")
    assert down.returncode == 1 and "failed" in down.stderr
    assert "Traceback" not in down.stderr
