"""The reload's decisions: which keys changed, which are applied, all-or-nothing, what is counted.

Components here are small recorders of the :class:`mesh.config.reload.Reloadable`
contract, over a small configuration model of the same shape as the edge's; the
real components (gateway, features, TLS, the sidecar's registration) are exercised
through real processes in ``tests/integration/test_reload.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from mesh.config.errors import ConfigError
from mesh.config.reload import (
    ConfigReloader,
    LoggingLevel,
    Reload,
    Reloadable,
    ReloadRefused,
    changed_keys,
    covered,
)
from mesh.config.sections import LoggingConfig
from mesh.config.types import Frozen

ROUTE = {"prefix": "/api/users", "service": "users"}


class Route(Frozen):
    prefix: str
    service: str


class Listen(Frozen):
    host: str = "0.0.0.0"
    port: int = 8080


class Auth(Frozen):
    realm: str = "meshgate"


class RateLimits(Frozen):
    policies: dict[str, dict[str, str]] = {}


class Conf(Frozen):
    """A configuration shaped like the edge's, as far as these tests need."""

    listen: Listen = Listen()
    logging: LoggingConfig = LoggingConfig()
    auth: Auth = Auth()
    rate_limits: RateLimits = RateLimits()
    routes: tuple[Route, ...] = ()


def config(**values: object) -> Conf:
    return Conf.model_validate({"routes": [ROUTE], **values})


class Recorder:
    """Claims ``keys``; records its prepares and commits in ``log``."""

    def __init__(self, name: str, keys: tuple[str, ...], log: list[str]) -> None:
        self.name, self.keys, self.log = name, keys, log

    def prepare_reload(self, config: Conf) -> Reload:
        self.log.append(f"prepare {self.name}")
        return Reload(self.keys, lambda: self.log.append(f"commit {self.name}"))


class Refuser:
    def prepare_reload(self, config: Conf) -> Reload:
        raise ReloadRefused("routes[0].auth", "method apikey is not configured")


class Abstainer:
    def prepare_reload(self, config: Conf) -> None:
        return None


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def reloader(
    files: list[Conf | ConfigError],
    components: Sequence[Reloadable[Conf]],
    registry: CollectorRegistry,
    started: Conf | None = None,
) -> ConfigReloader[Conf]:
    """A reloader whose file reads as each of ``files`` in turn (an error is raised)."""
    clock = iter(range(100, 200))

    def load() -> Conf:
        item = files.pop(0)
        if isinstance(item, ConfigError):
            raise item
        return item

    return ConfigReloader(
        "edge.yaml",
        load,
        started if started is not None else config(),
        components,
        registry,
        clock=lambda: float(next(clock)),
    )


# -- changed_keys and covered -------------------------------------------------------------


def test_changed_keys_walks_mappings_and_compares_lists_whole() -> None:
    old = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "routes": [1, 2], "gone": 0}
    new = {"a": 1, "b": {"c": 5, "d": {"e": 3, "f": 4}}, "routes": [2, 1], "added": {"x": 1}}
    assert changed_keys(old, new) == ["added", "b.c", "b.d.f", "gone", "routes"]
    assert changed_keys(old, old) == []


def test_changed_keys_of_real_configurations() -> None:
    a = config().model_dump()
    b = config(
        listen={"port": 9000},
        rate_limits={"policies": {"p": {"count_by": "ip", "limit": "1/s"}}},
    ).model_dump()
    keys = changed_keys(a, b)
    assert "listen.port" in keys
    assert "rate_limits.policies.p" in keys  # a policy added: named whole
    assert all(k.startswith(("listen.", "rate_limits.")) for k in keys)


def test_covered_means_equal_or_under_never_a_longer_name() -> None:
    assert covered("routes", ["routes"])
    assert covered("rate_limits.policies.p.limit", ["rate_limits.policies"])
    assert not covered("rate_limits.policies_extra", ["rate_limits.policies"])
    assert not covered("rate_limits", ["rate_limits.policies"])
    assert not covered("routes", [])


# -- the reloader -----------------------------------------------------------------------


def test_applied_keys_and_restart_pending_keys() -> None:
    registry, log = CollectorRegistry(), list[str]()
    new = config(routes=[{**ROUTE, "prefix": "/v2"}], listen={"port": 9000})
    r = reloader([new], [Recorder("gateway", ("routes",), log)], registry)
    assert value(registry, "meshgate_config_last_reload_success_timestamp_seconds") == 100
    result = r.reload()
    assert log == ["prepare gateway", "commit gateway"]
    assert (result.outcome, result.applied, result.restart_pending) == (
        "applied",
        ("routes",),
        ("listen.port",),
    )
    assert value(registry, "meshgate_config_reloads_total", outcome="applied") == 1
    assert value(registry, "meshgate_config_reloads_total", outcome="refused") == 0
    assert value(registry, "meshgate_config_restart_pending") == 1
    assert value(registry, "meshgate_config_last_reload_success_timestamp_seconds") == 101
    assert r.view()["restart_pending"] == ["listen.port"]


def test_applied_is_against_the_last_reload_pending_against_the_start() -> None:
    registry, log = CollectorRegistry(), list[str]()
    first = config(routes=[{**ROUTE, "prefix": "/v2"}], listen={"port": 9000})
    second = config(routes=[{**ROUTE, "prefix": "/v2"}])  # the port back as started
    r = reloader([first, second], [Recorder("gateway", ("routes",), log)], registry)
    r.reload()
    result = r.reload()
    assert (result.applied, result.restart_pending) == ((), ())
    assert value(registry, "meshgate_config_restart_pending") == 0


def test_one_refusal_commits_nothing() -> None:
    registry, log = CollectorRegistry(), list[str]()
    new = config(routes=[{**ROUTE, "prefix": "/v2"}])
    parts = [Recorder("tls", ("tls",), log), Refuser(), Recorder("gateway", ("routes",), log)]
    r = reloader([new], parts, registry)
    result = r.reload()
    assert log == ["prepare tls"]  # prepared, never committed; the rest never asked
    assert result.outcome == "refused"
    assert result.error == (
        "invalid configuration in edge.yaml: routes[0].auth: method apikey is not configured"
    )
    assert value(registry, "meshgate_config_reloads_total", outcome="refused") == 1
    assert value(registry, "meshgate_config_last_reload_success_timestamp_seconds") == 100


def test_an_invalid_file_is_refused_with_its_message_and_keeps_what_was_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, log = CollectorRegistry(), list[str]()
    bad = ConfigError("edge.yaml", "must start with '/'", "routes[0].prefix")
    r = reloader([config(listen={"port": 9000}), bad], [Recorder("g", ("routes",), log)], registry)
    r.reload()
    with caplog.at_level(logging.ERROR):
        result = r.reload()
    assert result.outcome == "refused"
    assert result.restart_pending == ("listen.port",)  # still true of the running edge
    assert result.error == str(bad)
    assert f"meshgate: {bad}" in caplog.text
    assert value(registry, "meshgate_config_restart_pending") == 1
    assert r.view()["last_reload"]["outcome"] == "refused"


def test_a_component_applying_nothing_leaves_its_keys_pending() -> None:
    registry = CollectorRegistry()
    new = config(auth={"realm": "elsewhere"})
    result = reloader([new], [Abstainer()], registry).reload()
    assert result.outcome == "applied"
    assert result.applied == ()
    assert result.restart_pending == ("auth.realm",)


def test_logging_level_is_applied() -> None:
    root = logging.getLogger()
    before = root.level
    try:
        reload = LoggingLevel().prepare_reload(config(logging={"level": "debug"}))
        assert reload.keys == ("logging.level",)
        root.setLevel(logging.WARNING)
        reload.commit()
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(before)


def test_commit_order_is_the_components_order() -> None:
    registry, log = CollectorRegistry(), list[str]()
    names = ["logging", "tls", "cors", "gateway"]
    reloader([config()], [Recorder(n, (n,), log) for n in names], registry).reload()
    assert log == [f"prepare {n}" for n in names] + [f"commit {n}" for n in names]


class Broken:
    def prepare_reload(self, config: Conf) -> Reload:
        raise RuntimeError("a bug")


def test_a_failing_part_is_a_refusal_not_an_escape(caplog: pytest.LogCaptureFixture) -> None:
    registry, log = CollectorRegistry(), list[str]()
    parts: list[Reloadable[Conf]] = [Recorder("tls", ("tls",), log), Broken()]
    with caplog.at_level(logging.ERROR):
        result = reloader([config()], parts, registry).reload()
    assert log == ["prepare tls"]  # nothing committed
    assert result.outcome == "refused"
    assert result.error == "edge.yaml: the reload failed: RuntimeError('a bug') (see the log)"
    assert "Traceback" in caplog.text  # a bug keeps its traceback in the log
    assert value(registry, "meshgate_config_reloads_total", outcome="refused") == 1
