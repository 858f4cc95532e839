"""Run the edge: wire config, discovery, pipeline and listeners; drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from discovery.provider import make_provider
from edge.config import EdgeConfig
from edge.feature import EdgeContext
from edge.features import build_features
from edge.gateway import EdgeGateway
from mesh.admin import build_admin_app
from mesh.balancing import Balancer
from mesh.deadline import HEADER as DEADLINE_HEADER
from mesh.ingress import Ingress
from mesh.proxy import Proxy, ProxySettings
from mesh.server import Listener, wait_for_termination
from mesh.snapshot import SnapshotStore
from mesh.telemetry.metrics import ProxyMetrics
from mesh.transport.aiohttp_client import AiohttpTransport

log = logging.getLogger("meshgate.edge")


async def run_edge(config: EdgeConfig) -> None:
    store = SnapshotStore()
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, "edge")
    metrics.follow(store)
    transport = AiohttpTransport(config.proxy.pool_size_per_host)
    p = config.proxy
    proxy = Proxy(
        transport,
        lambda: store.current,
        Balancer(p.load_balancer),
        ProxySettings(p.connect_timeout, p.response_timeout, p.connect_attempts),
    )
    ctx = EdgeContext(store=store, registry=registry, consul=config.consul)
    features = build_features(config, ctx)
    gateway = EdgeGateway(config, store, proxy, metrics, features)
    provider = make_provider(config.discovery, config.consul, store)
    draining = False

    def ready() -> tuple[bool, dict[str, object]]:
        ok = store.ready.is_set() and not draining
        return ok, {"catalog": store.ready.is_set(), "draining": draining}

    admin = Listener(
        "admin",
        build_admin_app(
            ready=ready,
            views={
                "/routes": gateway.routes_view,
                **{path: view for f in features for path, view in f.admin_views().items()},
            },
            registry=registry,
        ),
        config.admin.host,
        config.admin.port,
    )
    strip = {DEADLINE_HEADER.lower()} | {h for f in features for h in f.strip_headers()}
    ingress = Ingress(
        gateway.chain, trusted_hops=p.trusted_hops, scheme="http", strip_headers=strip
    )
    main = Listener(
        "edge",
        ingress,
        config.listen.host,
        config.listen.port,
        shutdown_timeout=config.shutdown.timeout,
    )
    await admin.start()
    for feature in features:
        await feature.start()
    await provider.start()
    await main.start()
    log.info("edge ready to serve on %s:%s", config.listen.host, main.port)
    signame = await wait_for_termination()
    log.info("%s received: draining", signame)
    draining = True
    await asyncio.sleep(config.shutdown.drain_delay)
    await main.stop()
    await provider.stop()
    await transport.close()
    for feature in reversed(features):
        await feature.stop()
    await admin.stop()
    log.info("edge stopped")
