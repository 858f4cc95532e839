"""Run a sidecar: inbound (to the local app), outbound (the app's calls), registration.

Drain order on SIGTERM/SIGINT:
1. readiness fails and the instance is deregistered from Consul (callers stop
   picking it within one catalog update);
2. ``shutdown.drain_delay`` passes for requests already routed here;
3. listeners stop accepting; in-flight requests finish (up to
   ``shutdown.timeout``);
4. discovery and upstream connections close; pending access-log lines and
   spans are written (tracing flushes to its OTLP endpoint); the admin
   listener closes last.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry

from discovery.connect_ca import ConnectMeshTls
from discovery.consul_client import make_consul
from discovery.provider import make_provider, wait_for_first_catalog
from discovery.registration import Registration, RegistrationSpec
from mesh.admin import build_admin_app, readiness
from mesh.admin_auth import AdminAuth
from mesh.balancing import Balancer
from mesh.chain import Handler, build_chain
from mesh.config.reload import ConfigReloader, LoggingLevel, Reloadable
from mesh.faults.injection import FaultInjection
from mesh.faults.metrics import FaultMetrics
from mesh.filters.metrics import MetricsFilter
from mesh.ingress import Ingress
from mesh.mtls.spiffe import CLIENT_CERT_HEADER
from mesh.proxy import Proxy, ProxySettings
from mesh.server import Listener, settle_heap, wait_for_termination
from mesh.snapshot import SnapshotStore
from mesh.telemetry.exposition import exposition
from mesh.telemetry.locality import locality_router
from mesh.telemetry.metrics import ProxyMetrics
from mesh.telemetry.upstream import UpstreamTelemetry
from mesh.transport import make_transport
from mesh.transport.h1_head import authority
from mesh.upstream_limits import UpstreamLimits
from sidecar.app_health import PATH as APP_HEALTH_PATH
from sidecar.app_health import AppHealth
from sidecar.config import SidecarConfig
from sidecar.filters.deadline import DeadlineFilter
from sidecar.filters.faults import OutboundFaults
from sidecar.filters.identity import identity_filter
from sidecar.filters.inbound_limit import InboundLimitFilter
from sidecar.filters.intentions import IntentionFilter
from sidecar.filters.outbound_routing import OutboundRoutingFilter
from sidecar.guards import GuardRegistry
from sidecar.local_app import LocalApp
from sidecar.reloading import (
    InboundLimitReload,
    MeshTlsModeReload,
    OutboundFaultsReload,
    RegistrationReload,
    ResilienceReload,
)
from sidecar.resilience_metrics import BreakerTransitions, ResilienceCollector
from sidecar.resilient_proxy import ResilientProxy
from sidecar.telemetry import SidecarTelemetry

log = logging.getLogger("meshgate.sidecar")


def _check_url(config: SidecarConfig, inbound_port: int, admin_port: int) -> str:
    """Consul's check: the app's health path through the inbound listener; with mesh TLS
    (whose listener Consul cannot call without a certificate), the admin listener's
    ``/health/app`` at the address Consul reaches the sidecar at."""
    svc = config.service
    if not config.mesh_tls.enabled:
        return f"http://{svc.address}:{inbound_port}{config.app.health_path}"
    host = config.admin.host
    if host in ("0.0.0.0", "::", ""):
        host = svc.address
    return f"http://{authority(host, admin_port)}{APP_HEALTH_PATH}"


def _consul_duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


async def run_sidecar(
    config: SidecarConfig, reload: Callable[[], SidecarConfig] | None = None, config_file: str = ""
) -> None:
    """Serve until SIGTERM/SIGINT, then drain (see the module docstring). With ``reload``
    (reads ``config_file`` again, raising ConfigError, as at start), SIGHUP applies what
    can change live (:mod:`sidecar.reloading`)."""
    store = SnapshotStore()
    registry = CollectorRegistry()
    in_metrics = ProxyMetrics(registry, "sidecar")
    in_metrics.follow(store)
    transport = make_transport(config.proxy.transport, config.proxy.pool_size_per_host)
    p = config.proxy
    settings = ProxySettings.of(p)
    upstream_telemetry = UpstreamTelemetry(in_metrics)
    inbound_proxy = Proxy(
        transport,
        lambda: store.current,
        Balancer("round_robin"),
        settings,
        telemetry=upstream_telemetry,
    )
    m = config.mesh_tls
    intentions: IntentionFilter | None = None
    connect: ConnectMeshTls | None = None
    if m.enabled:
        connect = ConnectMeshTls(config.consul, config.service.name, m, registry, "sidecar")
        default_allow = m.default_intention == "allow"
        intentions = IntentionFilter(connect.mesh_tls, default_allow, registry, m.mode)
        connect.watcher.follow_intentions(intentions.replace, default_allow)
    transitions = BreakerTransitions()
    guards = GuardRegistry(config.resilience, on_transition=transitions)
    resilience = config.resilience
    limits = UpstreamLimits(resilience.defaults.max_requests, resilience.max_requests(), registry)
    registry.register(ResilienceCollector(guards, transitions))
    registration: Registration | None = None
    inbound_limit = InboundLimitFilter(config.inbound.limit)
    faults = OutboundFaults(config.outbound.faults, FaultInjection(FaultMetrics(registry)))
    # Consul's check calls /health/app (with mesh TLS) and cannot send the admin token.
    admin_auth = AdminAuth(config.admin, registry, open_paths={APP_HEALTH_PATH})
    reloader = None
    if reload is not None:
        parts: list[Reloadable[SidecarConfig]] = [
            LoggingLevel(),
            admin_auth,
            RegistrationReload(lambda: registration),
            ResilienceReload(guards, limits),
            InboundLimitReload(inbound_limit),
            OutboundFaultsReload(faults),
            *([connect] if connect is not None else []),
            *([MeshTlsModeReload(intentions)] if intentions is not None else []),
        ]
        reloader = ConfigReloader(config_file, reload, config, parts, registry)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.reload)
    outbound_proxy = ResilientProxy(
        transport,
        lambda: store.current,
        Balancer(p.load_balancer),
        guards,
        settings,
        telemetry=upstream_telemetry,
        mesh_tls=connect.mesh_tls if connect is not None else None,
        locality=locality_router(config.discovery.locality, store, registry),
        concurrency=limits.concurrency,
        on_canary=in_metrics.count_canary,
    )
    limits.serve(outbound_proxy)
    telemetry = SidecarTelemetry(config)
    metrics_filter = MetricsFilter(in_metrics)
    deadline_filter = DeadlineFilter()
    identity = identity_filter(config.identity)

    app_host, app_port = config.app.host_port
    app_health = AppHealth(
        f"http://{config.app.address}{config.app.health_path}", config.registration.check_timeout
    )
    inbound_chain = build_chain(
        [
            metrics_filter,
            *telemetry.inbound_filters(),
            *([intentions] if intentions else []),
            deadline_filter,
            *([identity] if identity else []),
            inbound_limit,
        ],
        LocalApp(inbound_proxy, config.service.name, app_host, app_port),
    )
    outbound_telemetry = telemetry.outbound_filters()
    outbound_routing = OutboundRoutingFilter(lambda: store.current)

    def build_outbound() -> Handler:
        return build_chain(
            [
                metrics_filter,
                *outbound_telemetry,
                deadline_filter,
                outbound_routing,
                # Before the resilient proxy: see sidecar.filters.faults for what sees a fault.
                *faults.filters(),
            ],
            outbound_proxy,
        )

    outbound_chain = build_outbound()

    def rebuild_outbound() -> None:
        nonlocal outbound_chain
        outbound_chain = build_outbound()

    faults.on_change = rebuild_outbound
    inbound = Listener(
        "inbound",
        Ingress(
            lambda: inbound_chain,
            trusted_hops=config.inbound.trusted_hops,
            # Only this sidecar says who called (with mesh TLS): never the caller.
            strip_headers=(CLIENT_CERT_HEADER.lower(),),
            upgrades=p.upgrades,
        ),
        config.inbound.host,
        config.inbound.port,
        ssl_context=connect.mesh_tls.server.context if connect is not None else None,
        shutdown_timeout=config.shutdown.timeout,
        # Plain-HTTP callers get an answer in HTTP: served or refused by mesh_tls.mode.
        plain_too=True,
        on_connection=connect.metrics.inbound_connection if connect is not None else None,
    )
    outbound = Listener(
        "outbound",
        Ingress(lambda: outbound_chain, trusted_hops=0, upgrades=p.upgrades),
        config.outbound.host,
        config.outbound.port,
        shutdown_timeout=config.shutdown.timeout,
    )
    provider = make_provider(config.discovery, config.consul, store)
    draining = False

    def ready() -> tuple[bool, Mapping[str, bool]]:
        return readiness(
            catalog=store.ready.is_set(),
            listening=inbound.listening and outbound.listening,
            registered=registration is None or registration.registered,
            draining=draining,
        )

    def upstreams_view() -> dict[str, object]:
        snap = store.current
        return {
            "service": config.service.name,
            "app": config.app.address,
            "upstreams": {
                name: [
                    {"id": i.id, "address": i.authority, "healthy": i.healthy}
                    for i in entry.instances
                ]
                for name, entry in snap.services.items()
            },
            "catalog": {"source": snap.source, "age_seconds": store.age()},
        }

    admin = Listener(
        "admin",
        build_admin_app(
            ready=ready,
            views={
                "/routes": upstreams_view,
                "/breakers": guards.view,
                "/upstream-limits": limits.view,
                **({"/config": reloader.view} if reloader is not None else {}),
                **({"/identity": identity.view} if identity else {}),
                **(
                    {"/mesh-tls": lambda: {**connect.mesh_tls.view(), "mode": intentions.mode}}
                    if connect is not None and intentions is not None
                    else {}
                ),
            },
            registry=exposition(
                registry,
                [
                    in_metrics.refresh,
                    limits.refresh_metrics,
                    *([connect.refresh_metrics] if connect else []),
                ],
            ),
            handlers={APP_HEALTH_PATH: app_health.handle},
            auth=admin_auth,
        ),
        config.admin.host,
        config.admin.port,
    )
    await admin.start()
    if identity is not None:
        await identity.start()
    await provider.start()
    if connect is not None:
        # The inbound listener needs the certificate, and the intentions to apply.
        await connect.start()
        await connect.wait_ready()
    await inbound.start()  # to the local app: needs no catalog
    await wait_for_first_catalog(store, config.discovery.initial_fetch_timeout, "outbound")
    await outbound.start()
    consul_client = None
    if config.registration.enabled:
        consul_client = make_consul(config.consul)
        r = config.registration
        svc = config.service
        spec = RegistrationSpec(
            name=svc.name,
            service_id=config.instance_id(inbound.port),
            address=svc.address,
            port=inbound.port,
            check_url=_check_url(config, inbound.port, admin.port),
            tags=svc.tags,
            meta=dict(svc.meta),
            check_interval=_consul_duration(r.check_interval),
            check_timeout=_consul_duration(r.check_timeout),
            deregister_critical_after=_consul_duration(r.deregister_critical_after),
            connect_native=connect is not None,
        )
        registration = Registration(consul_client, spec, keep_interval_s=r.resync_interval)
        await registration.start()
    log.info(
        "sidecar for %s: inbound :%s → app %s, outbound 127.0.0.1:%s",
        config.service.name,
        inbound.port,
        config.app.address,
        outbound.port,
    )
    log.info("%s", telemetry.describe())
    settle_heap()
    signame = await wait_for_termination()
    log.info("%s received: draining", signame)
    draining = True
    if registration is not None:
        await registration.deregister()
    await asyncio.sleep(config.shutdown.drain_delay)
    await asyncio.gather(inbound.stop(), outbound.stop())
    await provider.stop()
    await transport.close()
    await app_health.close()
    if connect is not None:
        await connect.stop()
    if identity is not None:
        await identity.stop()
    if consul_client is not None:
        await consul_client.close()
    telemetry.close()  # after draining: the last spans and log lines are in
    await admin.stop()
    log.info("sidecar stopped")
