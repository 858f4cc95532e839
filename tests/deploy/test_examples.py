"""The shipped configuration files load with the real loaders and say what they claim.

``deploy/examples/edge.yaml`` and ``sidecar.yaml`` promise to list every key
of their schema with its default: the tests below hold them to it, so a new
or changed setting fails here until the example documents it.
"""

from __future__ import annotations

import textwrap
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from demo.ratelimit_setup import edge_rate_limits
from demo.runner import WELCOME_ROUTE
from discovery.static_provider import StaticCatalog, StaticInstance, catalog_to_snapshot
from edge.auth.config import JwksConfig
from edge.config import EdgeConfig, RouteConfig, load_edge_config
from edge.gateway import config_routes
from edge.meta_routes import routes_from_meta
from edge.ratelimit.config import RateLimitsConfig
from edge.routes import RouteTable
from edge.tls import TlsConfig
from mesh.config.loader import load_config
from mesh.config.sections import LocalityConfig
from mesh.config.types import split_host_port
from sidecar.config import SidecarConfig, load_sidecar_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
COMPOSE_CONFIGS = ROOT / "deploy" / "compose"

# Variables the files interpolate; the tests decide their values.
_VARIABLES = (
    "CONSUL_HTTP_ADDR",
    "CONSUL_HTTP_TOKEN",
    "MESHGATE_STATIC_CATALOG",
    "MESHGATE_LOG_LEVEL",
    "ORDERS_INSTANCE_ID",
    "ORDERS_HOST",
)


@pytest.fixture(autouse=True)
def _no_config_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _load_catalog(path: Path) -> StaticCatalog:
    return load_config(path, StaticCatalog)


def _loader_for(path: Path) -> Callable[[Path], BaseModel]:
    """Which loader a shipped file is for, by its name."""
    name = path.name
    if name.startswith("edge"):
        return load_edge_config
    if name.startswith("sidecar"):
        return load_sidecar_config
    if "catalog" in name:
        return _load_catalog
    raise AssertionError(f"{path}: no loader known for this file name; add one to the tests")


SHIPPED = sorted([*EXAMPLES.glob("*.yaml"), *COMPOSE_CONFIGS.glob("*.yaml")])


def test_the_expected_files_are_shipped() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in SHIPPED}
    assert {
        "deploy/examples/edge.yaml",
        "deploy/examples/edge-static.yaml",
        "deploy/examples/sidecar.yaml",
        "deploy/examples/static-catalog.yaml",
        "deploy/compose/edge.yaml",
        "deploy/compose/sidecar-users.yaml",
        "deploy/compose/sidecar-orders.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_file_loads_as_it_is(path: Path) -> None:
    assert isinstance(_loader_for(path)(path), BaseModel)


# --- every key, with its default ------------------------------------------------


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``Model``, ``Model | None`` or ``tuple[Model, ...]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _undocumented(model: type[BaseModel], tree: Any, path: str = "") -> list[str]:
    """Key paths of ``model`` absent from the YAML ``tree``.

    For a list of sections (routes), or a mapping of named sections (rate-limit
    policies), every key must appear in at least one item.
    """
    missing: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        if not isinstance(tree, dict) or name not in tree:
            missing.append(key)
            continue
        sub = _nested_model(field.annotation)
        value = tree[name]
        if sub is None or value is None:
            continue
        if isinstance(value, dict) and typing.get_origin(field.annotation) is dict:
            named: dict[str, Any] = {}
            for item in value.values():
                named.update(item)
            missing += _undocumented(sub, named, f"{key}.<name>")
        elif isinstance(value, list):
            union: dict[str, Any] = {}
            for item in value:
                union.update(item)
            missing += _undocumented(sub, union, f"{key}[]")
        else:
            missing += _undocumented(sub, value, key)
    return missing


@pytest.mark.parametrize(
    ("file", "model"), [("edge.yaml", EdgeConfig), ("sidecar.yaml", SidecarConfig)]
)
def test_example_lists_every_key_of_the_schema(file: str, model: type[BaseModel]) -> None:
    tree = yaml.safe_load((EXAMPLES / file).read_text())
    assert _undocumented(model, tree) == [], f"deploy/examples/{file} does not show these keys"


def test_route_keys_are_all_shown() -> None:
    # _undocumented covers routes too; this names the failure plainly.
    tree = yaml.safe_load((EXAMPLES / "edge.yaml").read_text())
    shown = set().union(*(route.keys() for route in tree["routes"]))
    assert shown == set(RouteConfig.model_fields)


def test_edge_example_values_are_the_defaults() -> None:
    config = load_edge_config(EXAMPLES / "edge.yaml")
    # Like routes, the rate-limit policies and auth providers are an example
    # (the default is none).
    example: Any = {
        "routes": True,
        "rate_limits": {"policies": True, "default_policies": True},
        "auth": {"providers": True},
    }
    assert config.model_dump(exclude=example) == EdgeConfig().model_dump(exclude=example)
    # Spelled out, for the values a reader looks for first.
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 8080)
    assert (config.admin.host, config.admin.port) == ("127.0.0.1", 9901)
    assert config.consul.address == "127.0.0.1:8500"
    assert config.consul.token == ""
    assert config.shutdown.drain_delay == 0.5
    assert config.consul_routes is True


def test_edge_example_routes() -> None:
    config = load_edge_config(EXAMPLES / "edge.yaml")
    users, orders, orders_v2, moved, robots = config.routes
    assert (users.prefix, users.service, users.prefix_rewrite) == ("/api/users", "users", "/users")
    assert orders.methods == ("GET", "POST")
    assert orders.timeout == 5.0
    assert orders.host == "api.example.com"
    assert not orders.strip_prefix
    assert orders.match is None
    # The conditions' route shares host and prefix with orders-api, without a conflict.
    assert (orders_v2.host, orders_v2.prefix) == (orders.host, orders.prefix)
    assert orders_v2.match is not None
    assert [h.kind_and_text() for h in orders_v2.match.headers] == [
        ("exact", "2"),
        ("prefix", "application/vnd.orders"),
        ("regex", "(web|ios|android)/[0-9.]+"),
        ("absent", ""),
    ]
    assert [q.kind_and_text()[0] for q in orders_v2.match.query] == [
        "exact",
        "prefix",
        "regex",
        "present",
    ]
    table = RouteTable(config_routes(config))
    assert table.conflicts == ()
    assert [r.service for r in table.routes if r.prefix == "/api/orders"] == ["orders-v2", "orders"]
    # The routes the edge answers itself.
    assert moved.service is None and moved.redirect is not None
    assert moved.redirect.action().location(
        "http", "shop.example:8080", "/v1/orders", "/v1/orders/7", "x=1"
    ) == ("http://shop.example:8080/api/orders/7?x=1")
    assert robots.direct_response is not None
    assert robots.direct_response.action().body == b"User-agent: *\nDisallow: /api/\n"


def test_edge_example_rate_limit_policies() -> None:
    config = load_edge_config(EXAMPLES / "edge.yaml")
    limits = config.rate_limits
    assert EdgeConfig().rate_limits.policies == {}  # the example's policies are no default
    assert limits.default_policies == ("anonymous", "per-user", "per-key")
    assert limits.policies["per-user"].count_by == ("user",)
    assert limits.policies["orders-writes"].count_by == ("user", "route")
    assert str(limits.policies["per-key"].by_plan["pro"]) == "100/s burst 200"
    users, orders, *_ = config.routes
    assert users.rate_limits is None  # the default policies
    assert orders.rate_limits == ("anonymous", "per-user", "per-key", "orders-writes")


def test_edge_example_auth_providers() -> None:
    auth = load_edge_config(EXAMPLES / "edge.yaml").auth
    assert EdgeConfig().auth.providers == {}  # the example's providers are no default
    providers = auth.jwt_providers()
    assert list(providers) == ["staff", "customers"]  # no top-level jwks: no `default`
    staff, customers = providers.values()
    # Left null, a provider takes the global algorithms and leeway.
    assert (customers.algorithms, customers.leeway) == (auth.algorithms, auth.leeway)
    assert (staff.algorithms, staff.leeway) == (("RS256",), 10.0)
    assert staff.jwks.service == "staff-sso"
    # Every jwks key shown for `customers` is JwksConfig's default except its url.
    assert customers.jwks.model_dump(exclude={"url"}) == JwksConfig().model_dump(exclude={"url"})


def test_sidecar_example_values_are_the_defaults_outside_service() -> None:
    config = load_sidecar_config(EXAMPLES / "sidecar.yaml")
    defaults = SidecarConfig.model_validate({"service": {"name": config.service.name}})
    # Like the edge's routes, outbound.faults is an example (the default is none) ...
    example: Any = {"service": True, "outbound": {"faults": True}}
    assert config.model_dump(exclude=example) == defaults.model_dump(exclude=example)
    # ... one that injects nothing into a sidecar started with the file as it is.
    for fault in config.outbound.faults.values():
        assert not fault.headers
        assert all(f is None or f.percent == 0 for f in (fault.delay, fault.abort))
    assert (config.admin.host, config.admin.port) == ("127.0.0.1", 15002)
    assert config.registration.deregister_critical_after == 60.0
    assert config.inbound.trusted_hops == 1


def test_sidecar_example_service_declares_its_edge_route() -> None:
    service = load_sidecar_config(EXAMPLES / "sidecar.yaml").service
    assert service.name == "orders"
    assert service.id == "orders-1"
    assert service.meta["meshgate-route"] == "/api/orders"
    assert service.meta["meshgate-route-rewrite"] == "/orders"


def test_examples_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "https://consul.internal:8501")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "s3cret")
    monkeypatch.setenv("ORDERS_INSTANCE_ID", "orders-7")
    edge = load_edge_config(EXAMPLES / "edge.yaml")
    assert edge.consul.host_port == ("consul.internal", 8501)
    assert edge.consul.scheme == "https"
    assert edge.consul.token == "s3cret"
    sidecar = load_sidecar_config(EXAMPLES / "sidecar.yaml")
    assert sidecar.consul.address == "https://consul.internal:8501"
    assert sidecar.service.id == "orders-7"


# --- the static catalog and the edge that uses it --------------------------------


def test_edge_static_example_uses_the_static_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    # The example's static_file is relative to the working directory: the repo root.
    monkeypatch.chdir(ROOT)
    config = load_edge_config(EXAMPLES / "edge-static.yaml")
    assert config.discovery.provider == "static"
    assert config.discovery.static_file is not None
    catalog_path = Path(config.discovery.static_file)
    assert catalog_path.resolve() == (EXAMPLES / "static-catalog.yaml").resolve()
    snapshot = catalog_to_snapshot(load_config(catalog_path, StaticCatalog))
    assert set(snapshot.services) == {"users", "orders"}
    assert [r.service for r in config.routes] == ["users"]


def test_static_catalog_example() -> None:
    catalog = load_config(EXAMPLES / "static-catalog.yaml", StaticCatalog)
    snapshot = catalog_to_snapshot(catalog)
    users = snapshot.services["users"].instances
    assert [(i.id, i.authority, i.healthy) for i in users] == [
        ("users-1", "127.0.0.1:15000", True),
        ("users-2", "127.0.0.1:15010", False),
    ]
    (orders,) = snapshot.services["orders"].instances
    assert orders.id == "orders-127.0.0.1-15020"  # the documented default id
    routes, problems = routes_from_meta(snapshot.services["orders"])
    assert problems == []
    (route,) = routes
    assert route.prefix == "/api/orders"
    assert route.upstream_path("/api/orders/7") == "/orders/7"


def test_static_catalog_example_shows_every_instance_key() -> None:
    tree = yaml.safe_load((EXAMPLES / "static-catalog.yaml").read_text())
    shown = {key for instances in tree["services"].values() for i in instances for key in i}
    assert shown == set(StaticInstance.model_fields)


# --- the compose stack's files --------------------------------------------------

WELCOME_FILE = Path(WELCOME_ROUTE["direct_response"]["body_file"])


def test_compose_edge_config() -> None:
    config = load_edge_config(COMPOSE_CONFIGS / "edge.yaml")
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 8080)
    # Published by compose, so it must listen beyond the container's loopback.
    assert (config.admin.host, config.admin.port) == ("0.0.0.0", 9901)
    assert config.consul.address == "consul:8500"
    assert [(r.matched, r.service, r.prefix_rewrite) for r in config.routes] == [
        ("/api/users", "users", "/users"),
        ("/auth", "auth", None),
        ("/", None, None),
    ]
    # GET / is answered by the edge, with the text `meshgate demo` serves.
    welcome = config.routes[2]
    assert welcome.path == "/" and welcome.direct_response is not None
    assert welcome.direct_response.action().body == WELCOME_FILE.read_bytes()
    assert welcome.auth is not None and welcome.auth.policy == "none"
    assert config.consul_routes
    # Every route needs a caller except the auth service's own, found in Consul.
    assert config.auth.effective_default_route().policy == "required"
    assert config.routes[1].auth is not None and config.routes[1].auth.policy == "none"
    assert config.auth.jwks.service == "auth"
    assert config.auth.api_keys.redis_url == "redis://redis:6379/0"
    # Finishes inside docker's default 10 s stop grace period.
    assert config.shutdown.drain_delay + config.shutdown.timeout < 10


def test_compose_edge_rate_limits_are_the_demos() -> None:
    config = load_edge_config(COMPOSE_CONFIGS / "edge.yaml")
    demo = RateLimitsConfig.model_validate(edge_rate_limits("redis://redis:6379/0"))
    assert config.rate_limits == demo
    # Consul runs in its own container: it checks the edge's /readyz by its compose name.
    assert config.registration.enabled and config.registration.address == "edge"


@pytest.mark.parametrize("name", ["users", "orders", "auth"])
def test_compose_sidecar_config(name: str) -> None:
    config = load_sidecar_config(COMPOSE_CONFIGS / f"sidecar-{name}.yaml")
    assert config.service.name == name
    # The sidecar shares the app container's network namespace, so other
    # containers (and Consul's check) reach it by the app's compose name.
    assert config.service.address == name
    assert config.consul.address == "consul:8500"
    assert split_host_port(config.app.address, 80) == ("127.0.0.1", 8000)
    assert config.inbound.host == "0.0.0.0"
    assert config.outbound.host == "127.0.0.1"
    assert config.admin.port == 15002
    check_url = f"http://{config.service.address}:{config.inbound.port}{config.app.health_path}"
    assert check_url == f"http://{name}:15000/health"
    # Identity headers reach the app only when the edge signed them.
    assert config.identity.require
    assert config.identity.edge_jwks_url == "http://edge:9901/identity/jwks.json"


def test_compose_orders_declares_its_route_and_users_does_not() -> None:
    orders = load_sidecar_config(COMPOSE_CONFIGS / "sidecar-orders.yaml").service.meta
    users = load_sidecar_config(COMPOSE_CONFIGS / "sidecar-users.yaml").service.meta
    assert orders["meshgate-route"] == "/api/orders"
    assert orders["meshgate-route-rewrite"] == "/orders"
    assert "meshgate-route" not in users  # users is routed by the edge's config


@pytest.mark.parametrize("file", ["edge.yaml", "sidecar.yaml"])
def test_commented_locality_example_is_valid_and_complete(file: str) -> None:
    """``discovery.locality`` is null in the examples (off by default); its commented
    block shows every key, and must load as it is shown."""
    lines = (EXAMPLES / file).read_text().splitlines()
    start = lines.index("  #   locality:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  #   "):
            break
        block.append(line.removeprefix("  #"))
    shown = yaml.safe_load(textwrap.dedent("\n".join(block)))["locality"]
    config = LocalityConfig.model_validate(shown)
    assert set(shown) == set(LocalityConfig.model_fields)
    assert config.service_policies()["billing"] is None


def test_commented_tls_example_is_valid_and_complete() -> None:
    """``tls`` is null in the edge's example (plain HTTP by default); its commented block
    shows every key, certificates' included, and must validate as it is shown."""
    lines = (EXAMPLES / "edge.yaml").read_text().splitlines()
    start = lines.index("#   tls:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line.removeprefix("#"))
    shown = yaml.safe_load(textwrap.dedent("\n".join(block)))
    assert _undocumented(TlsConfig, shown["tls"], "tls") == []
    tls = TlsConfig.model_validate(shown["tls"])
    # The values shown beside "default" are the defaults.
    assert tls.min_version == TlsConfig.model_fields["min_version"].default
    assert tls.certificates[0].server_names is None
    assert tls.certificates[1].server_names == ("shop.example.org", "*.shop.example.org")
