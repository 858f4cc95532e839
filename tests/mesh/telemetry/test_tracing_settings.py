"""Tracing settings: the config file wins, then the OTEL_* variables, then the defaults."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.telemetry.config import TracingConfig
from mesh.telemetry.tracing_settings import TracingSettings, resolve_tracing, traces_url


def resolve(env: dict[str, str], **config: Any) -> TracingSettings:
    return resolve_tracing(TracingConfig.model_validate(config), env, "meshgate-edge")


def test_defaults_without_config_or_variables() -> None:
    s = resolve({})
    assert s.enabled
    assert s.service_name == "meshgate-edge"
    assert s.endpoint is None  # nothing configured: nothing exported
    assert (s.sampler, s.ratio) == ("parentbased_traceidratio", 0.1)
    assert s.propagators == ("tracecontext", "baggage")
    assert s.resource_attributes == {"service.name": "meshgate-edge"}
    assert s.warnings == ()


@pytest.mark.parametrize(
    ("env", "config", "expected"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, {}, "http://jaeger:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318/"}, {}, "http://j:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom",
            },
            {},
            "http://traces:9999/custom",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"},
            {"otlp_endpoint": "http://file:4318"},
            "http://file:4318/v1/traces",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, {}, "http://localhost:4318/v1/traces"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, {}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, {}, None),
    ],
)
def test_endpoint(env: dict[str, str], config: dict[str, Any], expected: str | None) -> None:
    assert resolve(env, **config).endpoint == expected


def test_traces_url_appends_the_path_once() -> None:
    assert traces_url("http://a:4318") == "http://a:4318/v1/traces"
    assert traces_url("http://a:4318/v1/traces") == "http://a:4318/v1/traces"


@pytest.mark.parametrize(
    ("env", "config", "expected"),
    [
        ({"OTEL_SERVICE_NAME": "edge-eu"}, {}, "edge-eu"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-resource"}, {}, "from-resource"),
        (
            {"OTEL_SERVICE_NAME": "wins", "OTEL_RESOURCE_ATTRIBUTES": "service.name=loses"},
            {},
            "wins",
        ),
        ({"OTEL_SERVICE_NAME": "env"}, {"service_name": "file"}, "file"),
    ],
)
def test_service_name(env: dict[str, str], config: dict[str, Any], expected: str) -> None:
    s = resolve(env, **config)
    assert s.service_name == expected
    assert s.resource_attributes["service.name"] == expected


def test_resource_attributes_merge_and_decode() -> None:
    s = resolve(
        {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=a%20b,bad, =x"},
        resource_attributes={"team": "core"},
    )
    assert s.resource_attributes == {
        "deployment.environment": "prod",
        "team": "core",  # the file wins
        "service.name": "meshgate-edge",
    }
    assert len(s.warnings) == 2  # "bad" and " =x"


@pytest.mark.parametrize(
    ("env", "config", "sampler", "ratio"),
    [
        ({"OTEL_TRACES_SAMPLER": "always_on"}, {}, "always_on", 0.1),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            {},
            "traceidratio",
            0.25,
        ),
        ({"OTEL_TRACES_SAMPLER_ARG": "1"}, {}, "parentbased_traceidratio", 1.0),
        (
            {"OTEL_TRACES_SAMPLER_ARG": "0.5"},
            {"sampler_ratio": 0.0},
            "parentbased_traceidratio",
            0.0,
        ),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, {"sampler": "always_off"}, "always_off", 0.1),
    ],
)
def test_sampler(env: dict[str, str], config: dict[str, Any], sampler: str, ratio: float) -> None:
    s = resolve(env, **config)
    assert (s.sampler, s.ratio) == (sampler, ratio)
    assert s.warnings == ()


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_SAMPLER": "jaeger_remote"},
        {"OTEL_TRACES_SAMPLER_ARG": "2"},
        {"OTEL_TRACES_SAMPLER_ARG": "lots"},
    ],
)
def test_bad_sampler_variables_fall_back_with_a_warning(env: dict[str, str]) -> None:
    s = resolve(env)
    assert (s.sampler, s.ratio) == ("parentbased_traceidratio", 0.1)
    assert len(s.warnings) == 1


def test_propagators() -> None:
    assert resolve({"OTEL_PROPAGATORS": "b3, tracecontext,b3"}).propagators == (
        "b3",
        "tracecontext",
    )
    s = resolve({"OTEL_PROPAGATORS": "xray,b3multi"})
    assert s.propagators == ("b3multi",) and len(s.warnings) == 1
    assert resolve({"OTEL_PROPAGATORS": "b3"}, propagators=["tracecontext"]).propagators == (
        "tracecontext",
    )
    with pytest.raises(ValueError, match="at least one"):
        TracingConfig(propagators=())


def test_disabled_by_the_sdk_variable_or_the_file() -> None:
    assert not resolve({"OTEL_SDK_DISABLED": "true"}).enabled
    assert not resolve({}, enabled=False).enabled
    assert resolve({"OTEL_SDK_DISABLED": "false"}).enabled
