"""The auth feature's wiring: its filters, headers, keys, and a real JWKS over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry

from demo.auth_service import AuthServiceSettings, create_app, mint_token, new_signing_key
from discovery.settings import ConsulSettings
from edge.auth.config import AuthConfig
from edge.auth.feature import AuthFeature
from edge.auth.issuer_router import IssuerRouter
from edge.auth.jwt_verifier import JwtVerifier
from edge.feature import EdgeContext
from edge.filters.strip_identity import StripIdentityFilter
from edge.routes import make_route
from mesh.chain import Handler, build_chain
from mesh.config.errors import ConfigError
from mesh.exchange import Exchange
from mesh.identity.keys import generate_signing_key, key_id, signing_key_pem
from mesh.ingress import Ingress
from mesh.mtls.contexts import MeshTls
from mesh.mtls.material import Leaf, Roots
from mesh.snapshot import Instance, ServiceEntry, SnapshotStore, make_snapshot
from mesh.transport.fast import FastTransport
from tests.mesh.mtls.connect_ca import ConnectCa

ISSUER, AUDIENCE = "http://auth.demo", "meshgate"


def context(store: SnapshotStore | None = None) -> EdgeContext:
    return EdgeContext(store or SnapshotStore(), CollectorRegistry(), ConsulSettings())


def test_without_methods_only_stripping_runs() -> None:
    feature = AuthFeature(AuthConfig(), context())
    [strip] = feature.before_routing()
    assert isinstance(strip, StripIdentityFilter)
    assert feature.after_routing() == []
    assert feature.before_proxy() == []
    assert feature.strip_headers() == {
        "x-user-id",
        "x-user-roles",
        "x-user-email",
        "x-consumer-id",
        "x-auth-method",
        "x-auth-provider",
        "x-mesh-identity",
    }
    assert set(feature.admin_views()) == {"/auth", "/identity/jwks.json"}
    assert feature.view()["methods"] == []


def test_the_signing_key_file_decides_the_kid(tmp_path: Path) -> None:
    key = generate_signing_key("EdDSA")
    path = tmp_path / "identity.pem"
    path.write_bytes(signing_key_pem(key))
    config = AuthConfig.model_validate({"identity": {"token": {"signing_key_file": str(path)}}})
    feature = AuthFeature(config, context())
    assert feature.signer is not None
    assert (feature.signer.kid, feature.signer.algorithm) == (key_id(key.public_key()), "EdDSA")
    jwks: Any = feature.admin_views()["/identity/jwks.json"]()
    assert jwks["keys"][0]["kid"] == feature.signer.kid


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read the identity signing key"), (b"junk", "not an unencrypted PEM")],
)
def test_a_bad_signing_key_file_is_a_config_error(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "identity.pem"
    if content is not None:
        path.write_bytes(content)
    config = AuthConfig.model_validate({"identity": {"token": {"signing_key_file": str(path)}}})
    with pytest.raises(ConfigError, match=problem) as caught:
        AuthFeature(config, context())
    assert str(path) in str(caught.value)


def test_several_workers_need_a_shared_key() -> None:
    config = AuthConfig.model_validate(
        {"issuer": ISSUER, "audience": AUDIENCE, "jwks": {"url": "http://a/jwks"}}
    )
    with pytest.raises(ConfigError, match="signing_key_file is required"):
        AuthFeature(config, context(), workers=2)


@pytest.fixture
async def auth_server() -> AsyncIterator[tuple[TestServer, Any]]:
    key = new_signing_key("ES256")
    app = create_app(AuthServiceSettings(ISSUER, AUDIENCE), signing_key=key)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server, key
    finally:
        await server.close()


async def run_through(feature: AuthFeature, headers: list[tuple[str, str]]) -> Any:
    route = make_route(prefix="/", service="svc", source="config")
    seen: dict[str, Any] = {}

    async def routing(ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        ex.attrs["route"] = route
        return await next_handler(ex)

    async def capture(ex: Exchange) -> web.StreamResponse:
        seen["headers"] = CIMultiDict(ex.upstream_items())
        return web.Response(text="ok")

    chain = build_chain(
        [*feature.before_routing(), routing, *feature.after_routing(), *feature.before_proxy()],
        capture,
    )
    ingress = Ingress(lambda: chain, strip_headers=feature.strip_headers())
    request = make_mocked_request("GET", "/", headers=CIMultiDict([("Host", "h"), *headers]))
    response = await ingress(request)
    return response.status, seen.get("headers")


async def test_jwks_from_the_catalog(auth_server: tuple[TestServer, Any]) -> None:
    server, key = auth_server
    store = SnapshotStore()
    config = AuthConfig.model_validate(
        {"issuer": ISSUER, "audience": AUDIENCE, "jwks": {"service": "auth"}}
    )
    feature = AuthFeature(config, context(store))
    await feature.start()
    try:
        instance = Instance("auth-1", "auth", "127.0.0.1", server.port or 0)
        store.publish(make_snapshot({"auth": ServiceEntry("auth", (instance,))}, "test"))
        assert feature.jwks is not None
        for _ in range(100):  # the first fetch runs in the background once the catalog is in
            if feature.jwks.stats().keys:
                break
            await asyncio.sleep(0.02)
        token = mint_token(key.private_key, key.kid, "alice", ["user"], ISSUER, AUDIENCE, 60)
        status, headers = await run_through(feature, [("Authorization", f"Bearer {token}")])
        assert status == 200
        assert headers["X-User-Id"] == "alice" and "X-Mesh-Identity" in headers
        view = feature.view()
        assert view["jwks"]["source"] == "service auth at /.well-known/jwks.json"
        assert view["jwks"]["fetches"] == 1 and view["jwt"]["verified"] == 1
        assert view["default_route"]["policy"] == "required"
        assert view["identity_token"]["kid"] == feature.signer.kid  # type: ignore[union-attr]
    finally:
        await feature.stop()


async def test_first_fetch_is_retried_until_the_auth_service_appears(
    auth_server: tuple[TestServer, Any],
) -> None:
    server, _ = auth_server
    store = SnapshotStore()
    config = AuthConfig.model_validate(
        {"issuer": ISSUER, "audience": AUDIENCE, "jwks": {"service": "auth"}}
    )
    feature = AuthFeature(config, context(store))
    await feature.start()
    try:
        store.publish(make_snapshot({}, "test"))  # the catalog has no auth service yet
        await asyncio.sleep(0.3)
        assert feature.jwks is not None and feature.jwks.stats().failures >= 1
        instance = Instance("auth-1", "auth", "127.0.0.1", server.port or 0)
        store.publish(make_snapshot({"auth": ServiceEntry("auth", (instance,))}, "test"))
        for _ in range(200):
            if feature.jwks.stats().keys:
                break
            await asyncio.sleep(0.02)
        assert feature.jwks.stats().keys == 1
    finally:
        await feature.stop()


async def test_with_mesh_tls_the_jwks_comes_through_the_transport_over_mutual_tls() -> None:
    """The auth service behind a TLS listener that takes only Connect certificates (as a
    sidecar with mesh TLS): the first fetch waits for the edge's certificate, then goes
    through the edge's transport, which checks the peer is ``auth``."""
    ca = ConnectCa()
    auth_tls = MeshTls("auth", require=False)
    auth_tls.update(Leaf.from_consul(ca.leaf("auth")), Roots.from_consul(ca.roots()))
    key = new_signing_key("ES256")
    server = TestServer(create_app(AuthServiceSettings(ISSUER, AUDIENCE), signing_key=key))
    await server.start_server(ssl=auth_tls.server.context)
    transport = FastTransport()
    edge_tls = MeshTls("meshgate-edge", require=False)
    store = SnapshotStore()
    ctx = EdgeContext(
        store, CollectorRegistry(), ConsulSettings(), transport=transport, mesh_tls=edge_tls
    )
    config = AuthConfig.model_validate(
        {"issuer": ISSUER, "audience": AUDIENCE, "jwks": {"service": "auth"}}
    )
    feature = AuthFeature(config, ctx)
    await feature.start()
    try:
        instance = Instance("auth-1", "auth", "127.0.0.1", server.port or 0, mesh_tls=True)
        store.publish(make_snapshot({"auth": ServiceEntry("auth", (instance,))}, "test"))
        assert feature.jwks is not None
        await asyncio.sleep(0.3)
        assert feature.jwks.stats().fetches == 0  # no certificate yet: nothing tried
        edge_tls.update(Leaf.from_consul(ca.leaf("meshgate-edge")), Roots.from_consul(ca.roots()))
        for _ in range(100):
            if feature.jwks.stats().keys:
                break
            await asyncio.sleep(0.02)
        stats = feature.jwks.stats()
        assert (stats.keys, stats.fetches, stats.failures) == (1, 1, 0)
        token = mint_token(key.private_key, key.kid, "alice", ["user"], ISSUER, AUDIENCE, 60)
        status, headers = await run_through(feature, [("Authorization", f"Bearer {token}")])
        assert status == 200 and headers["X-User-Id"] == "alice"
        # The connection the fetch used is pooled under auth's mesh TLS identity.
        tls = edge_tls.for_instance(instance)
        assert transport.idle_connections("127.0.0.1", instance.port, tls) == 1
        assert feature.view()["jwks"]["source"] == (
            "service auth at /.well-known/jwks.json (mesh TLS to Connect-native instances)"
        )
    finally:
        await feature.stop()
        await transport.close()
        await server.close()


async def test_two_providers_each_with_its_own_key_set() -> None:
    staff_issuer = "http://sso.staff"
    keys = [new_signing_key("ES256"), new_signing_key("ES256")]
    settings = [AuthServiceSettings(ISSUER, AUDIENCE), AuthServiceSettings(staff_issuer, "staff")]
    servers = [
        TestServer(create_app(s, signing_key=k), host="127.0.0.1")
        for s, k in zip(settings, keys, strict=True)
    ]
    for server in servers:
        await server.start_server()
    config = AuthConfig.model_validate(
        {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks": {"url": str(servers[0].make_url("/.well-known/jwks.json"))},
            "providers": {
                "staff": {
                    "issuer": staff_issuer,
                    "audience": "staff",
                    "jwks": {"url": str(servers[1].make_url("/.well-known/jwks.json"))},
                }
            },
        }
    )
    store = SnapshotStore()
    ctx = context(store)
    feature = AuthFeature(config, ctx)
    await feature.start()
    try:
        store.publish(make_snapshot({}, "test"))  # the first fetches wait for the catalog
        assert isinstance(feature.jwt, IssuerRouter)
        for _ in range(200):
            fetched = feature.view()["providers"]
            if all(p["jwks"]["keys"] for p in fetched.values()):
                break
            await asyncio.sleep(0.02)
        alice = mint_token(keys[0].private_key, keys[0].kid, "alice", [], ISSUER, AUDIENCE, 60)
        carol = mint_token(keys[1].private_key, keys[1].kid, "carol", [], staff_issuer, "staff", 60)
        status, headers = await run_through(feature, [("Authorization", f"Bearer {alice}")])
        assert (status, headers["X-User-Id"], headers["X-Auth-Provider"]) == (
            200,
            "alice",
            "default",
        )
        status, headers = await run_through(feature, [("Authorization", f"Bearer {carol}")])
        assert (status, headers["X-User-Id"], headers["X-Auth-Provider"]) == (
            200,
            "carol",
            "staff",
        )
        # The staff key cannot stand in for the default provider's.
        forged = mint_token(keys[1].private_key, keys[1].kid, "eve", [], ISSUER, AUDIENCE, 60)
        status, _ = await run_through(feature, [("Authorization", f"Bearer {forged}")])
        assert status == 401
        view = feature.view()
        assert set(view["providers"]) == {"default", "staff"}
        assert view["providers"]["staff"]["issuer"] == staff_issuer
        assert view["providers"]["staff"]["jwt"]["verified"] == 1
        assert view["jwt"]["verified"] == 2 and view["jwt"]["refused"] == 1
        # Each key set's fetches are counted under its provider's name.
        for provider in ("default", "staff"):
            labels = {"provider": provider, "outcome": "success"}
            count = ctx.registry.get_sample_value("meshgate_jwks_refreshes_total", labels)
            assert count is not None and count >= 1
    finally:
        await feature.stop()
        for server in servers:
            await server.close()


async def test_one_provider_is_verified_without_routing_by_iss() -> None:
    config = AuthConfig.model_validate(
        {
            "providers": {
                "only": {"issuer": ISSUER, "audience": AUDIENCE, "jwks": {"url": "http://a/"}}
            }
        }
    )
    feature = AuthFeature(config, context())
    await feature.start()
    try:
        assert isinstance(feature.jwt, JwtVerifier)
        assert feature.jwks is not None
    finally:
        await feature.stop()
