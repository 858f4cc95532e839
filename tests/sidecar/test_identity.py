"""The sidecar's inbound identity check, its key sources, and its configuration."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from mesh.config.errors import ConfigError
from mesh.identity.keys import generate_signing_key, public_key_pem
from mesh.identity.token import IdentitySigner, verification_keys
from sidecar.config import SidecarConfig
from sidecar.identity import (
    FileEdgeKeys,
    InboundIdentity,
    JwksEdgeKeys,
    KeysByHeader,
    keys_from_jwks,
)

NOW = 1_700_000_000.0
RID = "request-0001"
EDGE_HEADERS = (("X-User-Id", "alice"), ("X-User-Roles", "user"), ("X-Auth-Method", "jwt"))


class StaticKeys:
    def __init__(self, keys: KeysByHeader) -> None:
        self.keys = dict(keys)
        self.next: dict[str, Any] | None = None
        self.refreshes = 0

    def current(self) -> KeysByHeader:
        return self.keys

    async def refresh(self) -> bool:
        self.refreshes += 1
        if self.next is None:
            return False
        self.keys, self.next = self.next, None
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def edge_signer() -> IdentitySigner:
    return IdentitySigner(generate_signing_key("ES256"), clock=lambda: NOW)


def token(signer: IdentitySigner, request_id: str = RID) -> str:
    return signer.sign(
        subject="alice", roles=["user"], request_id=request_id, method="jwt", headers=EDGE_HEADERS
    )


def check(signer: IdentitySigner, require: bool) -> InboundIdentity:
    return InboundIdentity(
        StaticKeys(verification_keys([signer.public_key])),
        require=require,
        headers=("X-User-Id", "X-User-Roles", "X-User-Email", "X-Consumer-Id", "X-Auth-Method"),
        token_header="X-Mesh-Identity",
        issuer="meshgate-edge",
        leeway_s=5,
        clock=lambda: NOW,
    )


def headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict([("Host", "svc"), *pairs])


async def test_a_valid_token_makes_the_headers_exactly_the_signed_ones() -> None:
    signer = edge_signer()
    good = token(signer)
    h = headers(
        ("X-Mesh-Identity", good),
        ("X-User-Id", "admin"),
        ("x_user_id", "root"),
        ("X-User-Email", "forged@example.com"),
    )
    assert await check(signer, require=True).apply(h, RID) is None
    assert list(h.items()) == [
        ("Host", "svc"),
        ("X-User-Id", "alice"),
        ("X-User-Roles", "user"),
        ("X-Auth-Method", "jwt"),
        ("X-Mesh-Identity", good),
    ]


REFUSALS = [
    ((("X-User-Id", "admin"),), "identity headers without an edge signature"),
    ((("X_User_Roles", "admin"),), "identity headers without an edge signature"),
    ((("X-Mesh-Identity", "a.b.c"),), "identity token refused: unknown key"),
    ((("X-Mesh-Identity", "garbage"),), "identity token refused: malformed token"),
]


@pytest.mark.parametrize(("pairs", "reason"), REFUSALS)
async def test_required_refuses_unsigned_identity(
    pairs: tuple[tuple[str, str], ...], reason: str
) -> None:
    signer = edge_signer()
    assert await check(signer, require=True).apply(headers(*pairs), RID) == reason


async def test_required_refuses_forgeries_replays_and_duplicates() -> None:
    signer, forger = edge_signer(), edge_signer()
    identity = check(signer, require=True)
    forged = headers(("X-Mesh-Identity", token(forger)))
    assert await identity.apply(forged, RID) == "identity token refused: unknown key"
    replayed = headers(("X-Mesh-Identity", token(signer)))
    assert await identity.apply(replayed, "other-request") == (
        "identity token refused: request id mismatch"
    )
    two = headers(("X-Mesh-Identity", token(signer)), ("X_Mesh_Identity", token(signer)))
    assert await identity.apply(two, RID) == "more than one identity token"
    assert identity.stats.refused == 3


@pytest.mark.parametrize(("pairs", "reason"), REFUSALS)
async def test_not_required_removes_unsigned_identity_instead(
    pairs: tuple[tuple[str, str], ...], reason: str
) -> None:
    signer = edge_signer()
    h = headers(*pairs, ("X-Other", "kept"))
    assert await check(signer, require=False).apply(h, RID) is None
    assert list(h.items()) == [("Host", "svc"), ("X-Other", "kept")]


async def test_anonymous_requests_pass() -> None:
    identity = check(edge_signer(), require=True)
    h = headers(("X-Other", "a"))
    assert await identity.apply(h, RID) is None
    assert identity.stats.anonymous == 1


async def test_a_new_edge_key_is_learnt_by_refreshing() -> None:
    old, new = edge_signer(), edge_signer()
    keys = StaticKeys(verification_keys([old.public_key]))
    identity = InboundIdentity(
        keys,
        require=True,
        headers=("X-User-Id",),
        token_header="X-Mesh-Identity",
        issuer="meshgate-edge",
        leeway_s=5,
        clock=lambda: NOW,
    )
    keys.next = verification_keys([old.public_key, new.public_key])
    assert await identity.apply(headers(("X-Mesh-Identity", token(new))), RID) is None
    assert keys.refreshes == 1


def test_file_keys(tmp_path: Path) -> None:
    key = generate_signing_key("EdDSA")
    path = tmp_path / "edge.pub.pem"
    path.write_bytes(public_key_pem(key.public_key()))
    assert list(FileEdgeKeys(str(path)).current().values()) != []
    with pytest.raises(ConfigError, match="cannot read"):
        FileEdgeKeys(str(tmp_path / "missing.pem"))
    path.write_bytes(b"junk")
    with pytest.raises(ConfigError, match="edge public key"):
        FileEdgeKeys(str(path))


def test_keys_from_jwks_skips_what_it_cannot_use() -> None:
    signer = edge_signer()
    document = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}, *signer.jwks()["keys"], "junk"]}
    assert keys_from_jwks(document).keys() == verification_keys([signer.public_key]).keys()
    with pytest.raises(ValueError):
        keys_from_jwks({"nope": []})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_jwks_keys_fetch_at_start_and_at_most_once_per_cooldown() -> None:
    signer = edge_signer()
    documents: list[Any] = [signer.jwks()]
    calls = 0

    async def fetch() -> Any:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        document = documents[-1]
        if isinstance(document, Exception):
            raise document
        return json.loads(json.dumps(document))

    clock = Clock()
    keys = JwksEdgeKeys("http://edge/jwks", refresh_s=3600, cooldown_s=5, clock=clock, fetch=fetch)
    await keys.start()
    try:
        for _ in range(100):
            if keys.current():
                break
            await asyncio.sleep(0.01)
        assert keys.current().keys() == verification_keys([signer.public_key]).keys()
        assert calls == 1
        # Within the cooldown: no fetch, however many ask.
        assert await asyncio.gather(*(keys.refresh() for _ in range(10))) == [False] * 10
        assert calls == 1
        # After it, one shared fetch; a new key shows as a change.
        clock.now = 5
        documents.append(edge_signer().jwks())
        assert await asyncio.gather(*(keys.refresh() for _ in range(10))) == [True] * 10
        assert calls == 2
        # A failed fetch keeps the keys known.
        clock.now = 10
        known = dict(keys.current())
        documents.append(ConnectionError("edge down"))
        assert await keys.refresh() is False
        assert dict(keys.current()) == known and keys.failures == 1
    finally:
        await keys.stop()


BASE: dict[str, Any] = {"service": {"name": "users"}}


@pytest.mark.parametrize(
    ("identity", "problem"),
    [
        ({"require": True}, "require needs edge_public_key_file or edge_jwks_url"),
        (
            {"edge_public_key_file": "a.pem", "edge_jwks_url": "http://e/j"},
            "either edge_public_key_file or edge_jwks_url",
        ),
        ({"edge_jwks_url": "edge:9901"}, "http:// or https://"),
        ({"leeway": "2m"}, "at most 60 seconds"),
        ({"headers": ["X User"]}, "not a valid header name"),
        ({"token_header": "X-User-Id"}, "token_header must not be one of headers"),
    ],
)
def test_config_validation(identity: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        SidecarConfig.model_validate({**BASE, "identity": identity})


def test_config_default_is_off() -> None:
    config = SidecarConfig.model_validate(BASE)
    assert not config.identity.enabled and not config.identity.require


async def test_jwks_keys_are_fetched_again_every_refresh_period() -> None:
    signer = edge_signer()
    calls = 0

    async def fetch() -> Any:
        nonlocal calls
        calls += 1
        return signer.jwks()

    # Unchanged answers still count as successes: the next fetch waits refresh_s,
    # not the (much longer) retry cooldown.
    keys = JwksEdgeKeys("http://edge/jwks", refresh_s=0.05, cooldown_s=60, fetch=fetch)
    await keys.start()
    try:
        await asyncio.sleep(0.4)
    finally:
        await keys.stop()
    assert calls >= 3
