"""The demo auth service's shared key file and its request counters."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import jwt
from aiohttp.test_utils import TestClient, TestServer

from demo.auth_service import (
    AuthServiceSettings,
    create_app,
    key_id_for,
    load_key_file,
    load_or_create_key_file,
    mint_token,
    signing_key_from_file,
)


def test_key_file_is_created_once_private_and_gives_a_stable_kid(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    key = load_or_create_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_or_create_key_file(path)
    assert key_id_for(again) == key_id_for(key)
    assert key_id_for(load_key_file(path)) == key_id_for(key)
    rsa = load_or_create_key_file(tmp_path / "rsa.pem", "RS256")
    assert len(key_id_for(rsa)) == 43 and key_id_for(rsa) != key_id_for(key)


async def test_tokens_minted_from_the_file_verify_against_the_services_jwks(
    tmp_path: Path,
) -> None:
    private = load_or_create_key_file(tmp_path / "signing.pem")
    app = create_app(
        AuthServiceSettings("http://auth.demo", "meshgate"),
        signing_key=signing_key_from_file(private),
    )
    async with TestClient(TestServer(app)) as client:
        jwks = await (await client.get("/.well-known/jwks.json")).json()
        [published] = jwks["keys"]
        assert published["kid"] == key_id_for(private)
        token = mint_token(
            private, key_id_for(private), "alice", ["user"], "http://auth.demo", "meshgate", 60
        )
        key = jwt.PyJWK(published)
        claims = jwt.decode(token, key, algorithms=["ES256"], audience="meshgate")
        assert claims["sub"] == "alice"

        await client.get("/.well-known/jwks.json")
        await client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "alice", "password": "wonderland"},
        )
        stats = await (await client.get("/admin/stats")).json()
        assert stats["jwks_fetches"] == 2
        assert stats["tokens_issued"] == 1
        assert stats["introspections"] == 0
        assert stats["kid"] == key_id_for(private)
