"""The observability files of the demo stack: Jaeger, Prometheus, Grafana.

Checked statically, like the rest of the compose stack here: every admin
listener is scraped, every process exports traces to Jaeger, and every query
of the dashboard names a series meshgate really exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from edge.cache.metrics import CacheMetrics
from edge.cache.shared_purges import SharedPurgeMetrics
from edge.compression.feature import CompressionFeature
from edge.config import EdgeConfig
from edge.ext_authz.metrics import ExtAuthzMetrics
from edge.ip_access.feature import IpAccessFeature
from edge.mirror.metrics import MirrorMetrics
from edge.outliers.metrics import OutlierMetrics
from edge.ratelimit.prometheus import PrometheusObserver
from edge.tls_metrics import TlsCertificateMetrics
from mesh.admin_auth import AdminAuth
from mesh.config.reload import ConfigReloader
from mesh.config.sections import AdminConfig
from mesh.faults.metrics import FaultMetrics
from mesh.mtls.contexts import MeshTls
from mesh.mtls.metrics import MeshTlsMetrics
from mesh.telemetry.metrics import ProxyMetrics, RefreshMetrics
from mesh.telemetry.upstream_limits import UpstreamLimitMetrics
from sidecar.filters.intentions import IntentionFilter
from sidecar.guards import GuardRegistry
from sidecar.resilience_config import ResilienceConfig
from sidecar.resilience_metrics import BreakerTransitions, ResilienceCollector

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DASHBOARD = json.loads((ROOT / "deploy/grafana/meshgate-dashboard.json").read_text())
PROMETHEUS = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())

_SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}


def exported_series() -> set[str]:
    """Every sample name meshgate's registries can show."""
    registry = CollectorRegistry()
    ProxyMetrics(registry, "edge")
    RefreshMetrics(registry, "jwks")
    PrometheusObserver(registry)
    transitions = BreakerTransitions()
    guards = GuardRegistry(ResilienceConfig(), on_transition=transitions)
    guards.for_service("inventory")
    registry.register(ResilienceCollector(guards, transitions))
    ConfigReloader("edge.yaml", EdgeConfig, EdgeConfig(), [], registry)
    CompressionFeature(EdgeConfig(), registry)
    IpAccessFeature(EdgeConfig(), registry)
    MeshTlsMetrics(registry, "sidecar")
    IntentionFilter(MeshTls("orders", require=False), True, registry)
    OutlierMetrics(registry)
    FaultMetrics(registry)
    MirrorMetrics(registry)
    CacheMetrics(registry)
    SharedPurgeMetrics(registry)
    ExtAuthzMetrics(registry)
    UpstreamLimitMetrics(registry)
    TlsCertificateMetrics(registry)
    AdminAuth(AdminConfig(), registry)
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def expressions() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]


def test_every_dashboard_query_names_an_exported_series() -> None:
    exported = exported_series()
    used = {name for expr in expressions() for name in re.findall(r"\bmeshgate_\w+", expr)}
    assert used, "no meshgate series in the dashboard"
    assert used - exported == set()
    # The list, each on the dashboard.
    for wanted in (
        "meshgate_requests_total",
        "meshgate_request_duration_seconds_bucket",
        "meshgate_upstream_duration_seconds_bucket",
        "meshgate_ratelimit_decisions_total",
        "meshgate_breaker_state",
        "meshgate_retries_total",
        "meshgate_retry_budget_exhausted_total",
        "meshgate_catalog_age_seconds",
        "meshgate_instances",
        "meshgate_jwks_refreshes_total",
        "meshgate_connections",
        "meshgate_connections_refused_total",
        "meshgate_malformed_requests_total",
        "meshgate_tunnels",
        "meshgate_tunnels_closed_total",
        "meshgate_tunnel_bytes_total",
        "meshgate_config_reloads_total",
        "meshgate_config_restart_pending",
        "meshgate_address_refusals_total",
        "meshgate_compressed_responses_total",
        "meshgate_intention_refusals_total",
        "meshgate_mesh_tls_certificate_expiry_timestamp_seconds",
        "meshgate_mesh_tls_ready",
        "meshgate_mesh_tls_replacements_total",
        "meshgate_mesh_tls_inbound_connections_total",
        "meshgate_mesh_tls_plaintext_requests_total",
        "meshgate_outlier_ejections_total",
        "meshgate_outlier_ejected_instances",
        "meshgate_faults_injected_total",
        "meshgate_faults_active",
        "meshgate_faults_overflow_total",
        "meshgate_mirror_requests_total",
        "meshgate_mirror_responses_total",
        "meshgate_mirror_in_flight",
        "meshgate_cache_requests_total",
        "meshgate_cache_bytes",
        "meshgate_cache_entries",
        "meshgate_cache_evictions_total",
        "meshgate_ext_authz_requests_total",
        "meshgate_ext_authz_duration_seconds_bucket",
        "meshgate_hedges_total",
        "meshgate_tls_certificate_expiry_timestamp_seconds",
        "meshgate_admin_refusals_total",
    ):
        assert wanted in used, wanted


def test_dashboard_shape() -> None:
    assert DASHBOARD["uid"] == "meshgate"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "prometheus"
            assert panel["targets"]


def sidecar_apps() -> set[str]:
    """The app service each sidecar shares its network namespace with."""
    return {
        s["network_mode"].removeprefix("service:")
        for s in SERVICES.values()
        if isinstance(s.get("command"), list) and s["command"][:1] == ["sidecar"]
    }


def test_prometheus_scrapes_every_admin_listener() -> None:
    targets = {
        target
        for job in PROMETHEUS["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert "edge:9901" in targets
    apps = sidecar_apps()
    assert {"users", "orders", "inventory"} <= apps
    assert {f"{app}:15002" for app in apps} <= targets
    prometheus = SERVICES["prometheus"]
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (prometheus["volumes"])
    )


def test_jaeger_receives_otlp_from_every_process() -> None:
    jaeger = SERVICES["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert any(str(p).endswith(":16686") for p in jaeger["ports"])
    env = COMPOSE["x-meshgate-env"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert "OTEL_SERVICE_NAME" not in env  # each process names itself
    meshgate = [s for s in SERVICES.values() if s.get("image", "").startswith("${MESHGATE_IMAGE")]
    assert meshgate and all(
        s["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318" for s in meshgate
    )


def test_orders_calls_inventory_through_its_sidecar() -> None:
    command = SERVICES["orders"]["command"]
    assert command[command.index("--outbound") + 1] == "http://127.0.0.1:15001"
    assert SERVICES["inventory-sidecar"]["network_mode"] == "service:inventory"


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    volumes = SERVICES["grafana"]["volumes"]
    for volume in volumes:
        source = volume.split(":")[0]
        assert (ROOT / source).exists(), source
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    assert datasource["datasources"][0]["uid"] == "prometheus"


def test_exemplars_are_stored_and_open_their_trace() -> None:
    # Prometheus keeps exemplars only with the feature on (its own arguments kept too).
    command = SERVICES["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in command
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    # Grafana links an exemplar's trace_id (what meshgate writes) to the Jaeger source.
    sources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"]
    by_uid = {s["uid"]: s for s in sources}
    (link,) = by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert link["name"] == "trace_id"
    jaeger = by_uid[link["datasourceUid"]]
    assert (jaeger["type"], jaeger["url"]) == ("jaeger", "http://jaeger:16686")
    assert "jaeger" in SERVICES["grafana"]["depends_on"]
    # The latency panels ask for them.
    asking = {
        panel["title"]
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
        if target.get("exemplar")
    }
    assert "Request latency at the edge" in asking
    assert len(asking) == 3
