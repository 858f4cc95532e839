"""YAML → interpolation → frozen pydantic model; every failure is one ConfigError line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from edge.config import EdgeConfig, RouteConfig
from mesh.config.errors import ConfigError
from mesh.config.loader import load_config, parse_config
from mesh.config.types import Duration, Frozen, Port
from sidecar.config import SidecarConfig

# --- a small model of our own ---------------------------------------------------------------


class Upstream(Frozen):
    prefix: str
    port: Port = 80
    timeout: Duration = 1.0


class Server(Frozen):
    name: str
    token: str = ""
    workers: int = Field(default=1, ge=1)
    upstreams: tuple[Upstream, ...] = ()


@pytest.fixture(autouse=True)
def _no_consul_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # EdgeConfig/SidecarConfig defaults read these; keep the tests independent of the host.
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)


def _error(
    text: str, model: type[Frozen] = Server, env: dict[str, str] | None = None
) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, model, file="conf.yaml", env={} if env is None else env)
    return info.value


# --- successful loads -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        pytest.param("name: a", {}, Server(name="a"), id="minimal"),
        pytest.param(
            "name: a\nworkers: 4\nupstreams:\n  - prefix: /x\n    port: 81\n    timeout: 250ms",
            {},
            Server(name="a", workers=4, upstreams=(Upstream(prefix="/x", port=81, timeout=0.25),)),
            id="nested-with-duration",
        ),
        pytest.param(
            "name: ${NAME}\ntoken: ${TOKEN:-none}",
            {"NAME": "svc"},
            Server(name="svc", token="none"),
            id="variable-and-default",
        ),
        pytest.param(
            "name: a\nupstreams:\n  - prefix: /x\n    port: ${PORT}\n    timeout: ${T:-2m}",
            {"PORT": "9000"},
            Server(name="a", upstreams=(Upstream(prefix="/x", port=9000, timeout=120.0),)),
            id="variable-into-int-and-duration",
        ),
        pytest.param("name: cost $$5", {}, Server(name="cost $5"), id="escaped-dollar"),
        pytest.param(
            "name: '${X}'\ntoken: \"${X}\"", {"X": "q"}, Server(name="q", token="q"), id="quoted"
        ),
    ],
)
def test_parse_config(text: str, env: dict[str, str], expected: Server) -> None:
    assert parse_config(text, Server, env=env) == expected


def test_result_is_frozen() -> None:
    server = parse_config("name: a", Server, env={})
    with pytest.raises(ValidationError):
        server.name = "b"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGATE_TEST_NAME", "from-environ")
    assert parse_config("name: ${MESHGATE_TEST_NAME}", Server).name == "from-environ"


def test_explicit_env_replaces_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGATE_TEST_NAME", "from-environ")
    out = parse_config("name: ${MESHGATE_TEST_NAME:-dflt}", Server, env={})
    assert out.name == "dflt"


@pytest.mark.parametrize(
    "text", ["", "# only a comment\n", "---\n"], ids=["empty", "comment", "doc"]
)
def test_empty_document_is_an_empty_mapping(text: str) -> None:
    # Server has a required key, so an empty file is "missing name", not a YAML error.
    err = _error(text)
    assert err.key_path == "name"
    assert err.problem == "required key is missing"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "key_path", "problem_parts"),
    [
        pytest.param("name: a\nnmae: b", {}, "nmae", ["unknown key"], id="unknown-top-level"),
        pytest.param(
            "name: a\nupstreams:\n  - prefix: /x\n  - prefix: /y\n    prefx: /z",
            {},
            "upstreams[1].prefx",
            ["unknown key"],
            id="unknown-in-list-item",
        ),
        pytest.param("workers: 2", {}, "name", ["required key is missing"], id="missing-required"),
        pytest.param(
            "name: a\nworkers: many",
            {},
            "workers",
            ["valid integer"],
            id="wrong-type",
        ),
        pytest.param(
            "name: a\nworkers: 0", {}, "workers", ["greater than or equal to 1"], id="constraint"
        ),
        pytest.param("name: [1, 2]", {}, "name", ["valid string"], id="list-where-string-expected"),
        pytest.param(
            "name: a\nupstreams:\n  - prefix: /x\n    port: 70000",
            {},
            "upstreams[0].port",
            ["less than or equal to 65535"],
            id="port-range",
        ),
        pytest.param(
            "name: a\nupstreams:\n  - prefix: /x\n    timeout: -5",
            {},
            "upstreams[0].timeout",
            ["cannot be negative"],
            id="negative-duration",
        ),
        pytest.param(
            "name: a\nupstreams:\n  - prefix: /x\n    timeout: soon",
            {},
            "upstreams[0].timeout",
            ["expected a duration", "'soon'"],
            id="invalid-duration",
        ),
        pytest.param(
            "name: a\nupstreams:\n  - prefix: /x\n    port: ${P}",
            {},
            "upstreams[0].port",
            ["environment variable P is not set"],
            id="missing-variable",
        ),
        pytest.param(
            "name: ${NAME}",
            {},
            "name",
            ["environment variable NAME is not set", "${NAME:-default}"],
            id="missing-variable-hint",
        ),
    ],
)
def test_errors_name_file_key_path_and_problem(
    text: str, env: dict[str, str], key_path: str, problem_parts: list[str]
) -> None:
    err = _error(text, env=env)
    assert err.file == "conf.yaml"
    assert err.key_path == key_path
    for part in problem_parts:
        assert part in err.problem
    message = str(err)
    assert message.startswith(f"invalid configuration in conf.yaml: {key_path}: ")
    assert "\n" not in message


def test_value_error_prefix_is_removed() -> None:
    err = _error("name: a\nupstreams:\n  - {prefix: /x, timeout: soon}")
    assert not err.problem.startswith("Value error")


def test_several_problems_are_counted() -> None:
    # name missing, nmae unknown, workers too small, extra unknown: the first plus 3 more.
    err = _error("nmae: a\nworkers: 0\nextra: 1")
    assert err.problem.endswith("(and 3 more problems)")


def test_single_problem_has_no_count() -> None:
    assert "more problems" not in _error("name: a\nworkers: 0").problem


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("name: [1, 2\nworkers: 3", 2, id="unclosed-flow-sequence"),
        pytest.param("name: a\n  workers: 1", 2, id="mapping-in-scalar"),
        pytest.param("name: a\nworkers: 1\n bad: 2", 3, id="bad-indentation"),
        pytest.param('name: "unterminated', 1, id="unterminated-string"),
        pytest.param("name: a\n\tworkers: 1", 2, id="tab"),
    ],
)
def test_yaml_syntax_error_names_the_line(text: str, line: int) -> None:
    err = _error(text)
    assert err.key_path == ""
    assert err.problem.startswith(f"not valid YAML at line {line}, column ")
    assert str(err).startswith("invalid configuration in conf.yaml: not valid YAML")
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("text", "type_name"),
    [
        pytest.param("- a\n- b", "list", id="list"),
        pytest.param("just text", "str", id="scalar"),
        pytest.param("42", "int", id="number"),
    ],
)
def test_top_level_must_be_a_mapping(text: str, type_name: str) -> None:
    err = _error(text)
    assert err.problem == f"the top level must be a mapping, not {type_name}"


# --- ConfigError ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "problem", "key_path", "message"),
    [
        pytest.param(
            "edge.yaml",
            "unknown key",
            "routes[0].prefx",
            "invalid configuration in edge.yaml: routes[0].prefx: unknown key",
            id="with-key-path",
        ),
        pytest.param(
            "edge.yaml",
            "file not found",
            "",
            "invalid configuration in edge.yaml: file not found",
            id="without-key-path",
        ),
    ],
)
def test_config_error_message(file: str, problem: str, key_path: str, message: str) -> None:
    err = ConfigError(file, problem, key_path)
    assert str(err) == message
    assert (err.file, err.problem, err.key_path) == (file, problem, key_path)


# --- load_config (files) --------------------------------------------------------------------


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("name: ${N}\nworkers: 2\n", encoding="utf-8")
    assert load_config(path, Server, env={"N": "x"}) == Server(name="x", workers=2)
    assert load_config(str(path), Server, env={"N": "x"}) == Server(name="x", workers=2)


def test_load_config_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("name: a\nupstreams:\n  - prefix: /x\n    prefx: /y\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, Server, env={})
    assert info.value.file == str(path)
    assert str(info.value) == f"invalid configuration in {path}: upstreams[0].prefx: unknown key"


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, Server)
    assert info.value.file == str(path)
    assert info.value.problem == "file not found"


def test_load_config_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, Server)
    assert info.value.problem.startswith("cannot read file")


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path, Server)
    assert info.value.problem == "file is not UTF-8 text"


# --- the real schemas -----------------------------------------------------------------------

EDGE_YAML = """
listen: {port: 8443}
proxy:
  connect_timeout: 250ms
  response_timeout: 5s
  trusted_hops: 1
shutdown: {drain_delay: 2m}
routes:
  - prefix: /api/users
    service: users
    methods: [get, post]
    strip_prefix: true
    timeout: 1.5
  - prefix: /api/orders
    service: orders
    host: Shop.Example.com
    prefix_rewrite: /v2/orders
"""


def test_edge_config_full() -> None:
    cfg = parse_config(EDGE_YAML, EdgeConfig, env={})
    assert cfg.listen.port == 8443
    assert cfg.proxy.connect_timeout == 0.25
    assert cfg.proxy.response_timeout == 5.0
    assert cfg.proxy.trusted_hops == 1
    assert cfg.shutdown.drain_delay == 120.0
    assert cfg.routes == (
        RouteConfig(
            prefix="/api/users",
            service="users",
            methods=("GET", "POST"),
            strip_prefix=True,
            timeout=1.5,
        ),
        RouteConfig(
            prefix="/api/orders",
            service="orders",
            host="Shop.Example.com",
            prefix_rewrite="/v2/orders",
        ),
    )
    assert cfg.consul_routes is True


def test_edge_config_empty_file_gives_defaults() -> None:
    cfg = parse_config("", EdgeConfig, env={})
    assert cfg.listen.port == 8080
    limits = cfg.listen.connection_limits()
    assert (limits.idle_timeout, limits.max_connections) == (60.0, 10_000)
    assert limits.max_connections_per_address is None
    assert cfg.listen.body_timeout == 60.0
    assert cfg.routes == ()
    assert cfg.consul.address == "127.0.0.1:8500"
    assert cfg.discovery.provider == "consul"


@pytest.mark.parametrize(
    ("text", "key_path", "problem_part"),
    [
        pytest.param(
            "routes:\n  - prefix: /a\n    service: s\n    prefx: /b",
            "routes[0].prefx",
            "unknown key",
            id="route-unknown-key",
        ),
        pytest.param(
            "routes:\n  - prefix: /a\n    service: s\n  - prefix: b\n    service: s",
            "routes[1].prefix",
            "must start with '/'",
            id="route-prefix-relative",
        ),
        pytest.param(
            "routes:\n  - prefix: /a\n    service: s\n    prefix_rewrite: v2",
            "routes[0].prefix_rewrite",
            "must start with '/'",
            id="route-rewrite-relative",
        ),
        pytest.param(
            "routes:\n  - prefix: /a\n    service: s\n    methods: [GET, FETCH]",
            "routes[0].methods",
            "unknown HTTP method 'FETCH'",
            id="route-unknown-method",
        ),
        pytest.param(
            "routes:\n  - prefix: /a\n    service: s\n    strip_prefix: true\n"
            "    prefix_rewrite: /b",
            "routes[0]",
            "use either strip_prefix or prefix_rewrite, not both",
            id="route-strip-and-rewrite",
        ),
        pytest.param(
            "routes:\n  - prefix: /a",
            "routes[0]",
            "give exactly one of service, redirect and direct_response (found none)",
            id="route-missing-service",
        ),
        pytest.param(
            "routes:\n  - prefix: /a\n    path: /a\n    service: s",
            "routes[0]",
            "give exactly one of prefix and path (found both)",
            id="route-prefix-and-path",
        ),
        pytest.param(
            "routes:\n  - path: robots.txt\n    service: s",
            "routes[0].path",
            "must start with '/'",
            id="route-path-relative",
        ),
        pytest.param(
            "routes:\n  - prefix: /a\n    service: s\n    timeout: 5 minutes",
            "routes[0].timeout",
            "expected a duration",
            id="route-bad-timeout",
        ),
        pytest.param(
            "proxy:\n  connect_timeout: -1",
            "proxy.connect_timeout",
            "cannot be negative",
            id="negative-duration",
        ),
        pytest.param(
            "proxy:\n  load_balancer: random",
            "proxy.load_balancer",
            "round_robin",
            id="unknown-balancer",
        ),
        pytest.param("listen:\n  port: 70000", "listen.port", "65535", id="port-range"),
        pytest.param("listen:\n  port: http", "listen.port", "valid integer", id="port-type"),
        pytest.param(
            "listen:\n  max_connections: 0",
            "listen.max_connections",
            "greater than or equal to 1",
            id="no-connections",
        ),
        pytest.param(
            "listen:\n  idle_timeout: 0s", "listen.idle_timeout", "longer than 0", id="idle-zero"
        ),
        pytest.param(
            "listen:\n  body_timeout: soon", "listen.body_timeout", "duration", id="body-timeout"
        ),
        pytest.param(
            "consul:\n  address: consul:abc",
            "consul.address",
            "expected host:port",
            id="consul-bad-port",
        ),
        pytest.param(
            "discovery:\n  provider: static",
            "discovery",
            "static_file is required when provider is static",
            id="static-needs-file",
        ),
        pytest.param("logging:\n  level: loud", "logging.level", "'debug'", id="log-level"),
    ],
)
def test_edge_config_errors(text: str, key_path: str, problem_part: str) -> None:
    err = _error(text, EdgeConfig)
    assert err.key_path == key_path
    assert problem_part in err.problem


SIDECAR_YAML = """
service:
  name: orders
  tags: [v1]
  meta: {meshgate-route: /api/orders}
app:
  address: 127.0.0.1:${APP_PORT:-9000}
inbound: {port: 15010}
registration:
  check_interval: 500ms
  deregister_critical_after: 1m
"""


def test_sidecar_config_full() -> None:
    cfg = parse_config(SIDECAR_YAML, SidecarConfig, env={"APP_PORT": "9100"})
    assert cfg.service.name == "orders"
    assert cfg.service.tags == ("v1",)
    assert cfg.service.meta == {"meshgate-route": "/api/orders"}
    assert cfg.app.host_port == ("127.0.0.1", 9100)
    assert cfg.inbound.port == 15010
    assert cfg.inbound.trusted_hops == 1
    assert cfg.admin.port == 15002
    assert cfg.registration.check_interval == 0.5
    assert cfg.registration.deregister_critical_after == 60.0
    assert cfg.instance_id(15010).startswith("orders-")
    assert cfg.instance_id(15010).endswith("-15010")


def test_sidecar_config_explicit_instance_id() -> None:
    cfg = parse_config("service: {name: orders, id: orders-7}", SidecarConfig, env={})
    assert cfg.instance_id(15000) == "orders-7"


@pytest.mark.parametrize(
    ("text", "key_path", "problem_part"),
    [
        pytest.param("{}", "service", "required key is missing", id="service-required"),
        pytest.param("service: {name: -bad}", "service.name", "pattern", id="service-name"),
        pytest.param(
            "service: {name: ok, nmae: x}", "service.nmae", "unknown key", id="service-unknown-key"
        ),
        pytest.param(
            "service: {name: ok}\napp: {address: ':80'}",
            "app.address",
            "expected host:port",
            id="app-address-without-host",
        ),
        pytest.param(
            "service: {name: ok}\napp: {health_path: health}",
            "app.health_path",
            "must start with '/'",
            id="health-path-relative",
        ),
        pytest.param(
            "service: {name: ok}\nregistration: {check_interval: 1d}",
            "registration.check_interval",
            "expected a duration",
            id="bad-interval-unit",
        ),
        pytest.param(
            "service: {name: ok}\ninbound: {trusted_hops: 11}",
            "inbound.trusted_hops",
            "less than or equal to 10",
            id="trusted-hops-range",
        ),
        pytest.param(
            "service: {name: '${SVC}'}",
            "service.name",
            "environment variable SVC is not set",
            id="missing-variable",
        ),
    ],
)
def test_sidecar_config_errors(text: str, key_path: str, problem_part: str) -> None:
    err = _error(text, SidecarConfig)
    assert err.key_path == key_path
    assert problem_part in err.problem
