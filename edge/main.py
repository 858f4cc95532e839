"""Run the edge: wire config, discovery, pipeline and listeners; drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry

from discovery.connect_ca import ConnectMeshTls
from discovery.provider import make_provider, wait_for_first_catalog
from edge.config import EdgeConfig
from edge.feature import EdgeContext
from edge.features import build_features
from edge.gateway import EdgeGateway
from edge.https_redirect import HttpsRedirect
from edge.outliers.detection import OutlierDetection
from edge.outliers.sharing import PATH as EJECTIONS_PATH
from edge.registration import EdgeRegistration
from edge.tls_metrics import TlsCertificateMetrics
from edge.tls_server import ServerTls
from edge.upstream_limits.limits import EdgeUpstreamLimits
from mesh.admin import build_admin_app, readiness
from mesh.admin_auth import AdminAuth
from mesh.admin_workers import AdminWorkers
from mesh.balancing import Balancer
from mesh.config.reload import ConfigReloader, LoggingLevel, Reloadable
from mesh.deadline import HEADER as DEADLINE_HEADER
from mesh.ingress import Ingress
from mesh.mtls.spiffe import CLIENT_CERT_HEADER
from mesh.proxy import Proxy, ProxySettings
from mesh.server import Listener, settle_heap, wait_for_termination
from mesh.snapshot import SnapshotStore
from mesh.telemetry.exposition import exposition, multiprocess_enabled
from mesh.telemetry.locality import locality_router
from mesh.telemetry.metrics import ProxyMetrics
from mesh.telemetry.route_retries import RouteRetryMetrics
from mesh.telemetry.upstream import UpstreamTelemetry
from mesh.transport import make_transport
from mesh.workers import this_worker

log = logging.getLogger("meshgate.edge")


async def run_edge(
    config: EdgeConfig, reload: Callable[[], EdgeConfig] | None = None, config_file: str = ""
) -> None:
    """Serve until SIGTERM/SIGINT, then drain. With ``reload`` (reads ``config_file`` again,
    raising ConfigError, as at start), SIGHUP applies the file anew (:mod:`mesh.config.reload`)."""
    store = SnapshotStore()
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, "edge")
    metrics.follow(store)
    transport = make_transport(config.proxy.transport, config.proxy.pool_size_per_host)
    p = config.proxy
    m = config.mesh_tls
    connect = ConnectMeshTls(config.consul, m.service, m, registry, "edge") if m.enabled else None
    workers = AdminWorkers(this_worker())
    outliers = OutlierDetection(config.outlier_detection, store, registry, workers)
    limits = EdgeUpstreamLimits(config.upstream_limits, registry)
    proxy = Proxy(
        transport,
        lambda: store.current,
        Balancer(p.load_balancer),
        ProxySettings.of(p, body_timeout=config.listen.body_timeout),
        telemetry=UpstreamTelemetry(metrics),
        mesh_tls=connect.mesh_tls if connect is not None else None,
        outliers=outliers.detector,
        locality=locality_router(config.discovery.locality, store, registry),
        retry_metrics=RouteRetryMetrics(registry),
        concurrency=limits.concurrency,
    )
    outliers.serve(proxy)
    limits.serve(proxy)
    # Several workers share the ports (mesh.workers); one alone keeps them exclusive.
    reuse_port = config.workers > 1
    ctx = EdgeContext(
        store=store,
        registry=registry,
        consul=config.consul,
        transport=transport,
        mesh_tls=connect.mesh_tls if connect is not None else None,
        workers=workers,
    )
    features = build_features(config, ctx)
    gateway = EdgeGateway(config, store, proxy, metrics, features)
    tls = ServerTls(config.tls, TlsCertificateMetrics(registry)) if config.tls is not None else None
    open_paths = {path for f in features for path in f.open_admin_paths()}
    admin_auth = AdminAuth(config.admin, registry, open_paths)
    reloader = None
    if reload is not None:
        # The pipeline last: it is rebuilt from the features' new filters.
        parts: list[Reloadable[EdgeConfig]] = [
            LoggingLevel(),
            admin_auth,
            *([tls] if tls else []),
            *([connect] if connect is not None else []),
            outliers,
            limits,
            *features,
            gateway,
        ]
        reloader = ConfigReloader(config_file, reload, config, parts, registry)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.reload)
    provider = make_provider(config.discovery, config.consul, store)
    draining = False

    def ready() -> tuple[bool, Mapping[str, bool]]:
        return readiness(catalog=store.ready.is_set(), listening=main.listening, draining=draining)

    # Gauges set from the process's state (time-dependent ones included).
    refreshes = [metrics.refresh, *([connect.refresh_metrics] if connect is not None else [])]
    refreshes += [outliers.refresh_metrics, limits.refresh_metrics]

    admin = Listener(
        "admin",
        build_admin_app(
            ready=ready,
            views={
                "/routes": gateway.routes_view,
                **({"/config": reloader.view} if reloader is not None else {}),
                **({"/tls": tls.view} if tls is not None else {}),
                **({"/mesh-tls": connect.mesh_tls.view} if connect is not None else {}),
                "/outliers": outliers.view,
                "/upstream-limits": limits.view,
                **{path: view for f in features for path, view in f.admin_views().items()},
            },
            registry=exposition(registry, refreshes),
            endpoints={
                # An operator's ejection is for every worker (each has its own detector).
                ("POST", EJECTIONS_PATH): workers.across(
                    outliers.sharing.handle, every_worker=True
                ),
                **{r: handler for f in features for r, handler in f.admin_endpoints().items()},
            },
            across=workers.across,
            auth=admin_auth,
        ),
        config.admin.host,
        config.admin.port,
        reuse_port=reuse_port,
        unix_path=workers.socket_path,
    )
    # The client's claims of a deadline, or of a client certificate (only a sidecar
    # with mesh TLS says who called), and whatever the features manage.
    strip = {DEADLINE_HEADER.lower(), CLIENT_CERT_HEADER.lower()}
    strip |= {h for f in features for h in f.strip_headers()}
    ssl_context = tls.context if tls is not None else None
    ingress = Ingress(
        gateway.chain,
        trusted_hops=p.trusted_hops,
        scheme="https" if ssl_context is not None else "http",
        strip_headers=strip,
        upgrades=p.upgrades,
    )
    main = Listener(
        "edge",
        ingress,
        config.listen.host,
        config.listen.port,
        ssl_context=ssl_context,
        reuse_port=reuse_port,
        shutdown_timeout=config.shutdown.timeout,
        # Room for tokens past the auth size limit, so that auth (not the HTTP
        # parser) refuses them, with a 401 that says why.
        max_field_size=max(8190, 2 * config.auth.max_token_bytes),
        connections=config.listen.connection_limits(),
        connection_observer=metrics.connection_observer("edge"),
    )
    redirect = _redirect_listener(config, reuse_port, metrics)
    # Other workers read this one's gauges (catalog age, mesh TLS) from its metrics file.
    refresher = (
        asyncio.create_task(refresh_every(1.0, refreshes)) if multiprocess_enabled() else None
    )
    await admin.start()
    for feature in features:
        await feature.start()
    await provider.start()
    if connect is not None:
        # Before the listener opens: a request routed to a mesh-TLS instance needs it.
        await connect.start()
        await connect.wait_ready()
    # Each worker has its own catalog: one still without it would answer 503 (SO_REUSEPORT).
    await wait_for_first_catalog(store, config.discovery.initial_fetch_timeout, "edge")
    await main.start()
    if redirect is not None:
        await redirect.start()
    registration = EdgeRegistration(
        config.registration, config.consul, listen_port=main.port, admin_port=admin.port
    )
    await registration.start()
    log.info("edge ready to serve on %s:%s", config.listen.host, main.port)
    settle_heap()
    signame = await wait_for_termination()
    log.info("%s received: draining", signame)
    draining = True
    await registration.stop()
    await asyncio.sleep(config.shutdown.drain_delay)
    if redirect is not None:
        await redirect.stop()
    await main.stop()
    await provider.stop()
    await transport.close()
    if connect is not None:
        await connect.stop()
    if refresher is not None:
        refresher.cancel()
    for feature in reversed(features):
        await feature.stop()
    await admin.stop()
    log.info("edge stopped")


async def refresh_every(seconds: float, refreshes: Sequence[Callable[[], None]]) -> None:
    while True:
        for refresh in refreshes:
            refresh()
        await asyncio.sleep(seconds)


def _redirect_listener(
    config: EdgeConfig, reuse_port: bool, metrics: ProxyMetrics
) -> Listener | None:
    """The plain-HTTP listener redirecting to HTTPS, when TLS asks for one (open to the
    same clients as the edge's: the same connection limits)."""
    if config.tls is None or config.tls.redirect_http is None:
        return None
    r = config.tls.redirect_http
    https_port = r.https_port if r.https_port is not None else config.listen.port
    return Listener(
        "http-redirect",
        HttpsRedirect(https_port),
        r.host,
        r.port,
        reuse_port=reuse_port,
        shutdown_timeout=1,
        connections=config.listen.connection_limits(),
        connection_observer=metrics.connection_observer("http-redirect"),
    )
