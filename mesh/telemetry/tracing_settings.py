"""Resolve one process's tracing settings: config file, then OTEL_* variables, then defaults.

Pure: the environment is passed in, nothing is read or started here. The
rule for every key is the same: a value set in the file wins; a key left null
takes the standard OpenTelemetry variable; without either, meshgate's default.

===================================  =========================================
``OTEL_SDK_DISABLED=true``           tracing off (unless the file enables it)
``OTEL_SERVICE_NAME``                ``service.name`` (beats the resource's)
``OTEL_RESOURCE_ATTRIBUTES``         ``k=v,k2=v2`` (percent-decoded)
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``  the traces URL, used as it is
``OTEL_EXPORTER_OTLP_ENDPOINT``      base URL; ``/v1/traces`` is appended
``OTEL_TRACES_EXPORTER``             ``none`` disables export; ``otlp`` alone
                                     exports to http://localhost:4318
``OTEL_TRACES_SAMPLER`` / ``_ARG``   sampler and its ratio
``OTEL_PROPAGATORS``                 ``tracecontext,baggage,b3,b3multi``
===================================  =========================================

Unknown sampler or propagator names in the variables are reported in
``TracingSettings.warnings`` and ignored, like the SDK does, rather than
stopping the proxy.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import get_args

from mesh.telemetry.config import PropagatorName, SamplerName, TracingConfig

DEFAULT_SAMPLER: SamplerName = "parentbased_traceidratio"
DEFAULT_RATIO = 0.1
DEFAULT_PROPAGATORS: tuple[PropagatorName, ...] = ("tracecontext", "baggage")
DEFAULT_LOCAL_ENDPOINT = "http://localhost:4318/v1/traces"
TRACES_PATH = "/v1/traces"

_SAMPLERS: frozenset[str] = frozenset(get_args(SamplerName))
_PROPAGATORS: frozenset[str] = frozenset(get_args(PropagatorName))


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Everything :class:`mesh.telemetry.tracing.Tracing` needs, decided.

    ``endpoint`` is the full OTLP/HTTP traces URL, or None for no export.
    ``ratio`` only matters for the ``*traceidratio`` samplers.
    """

    enabled: bool
    service_name: str
    endpoint: str | None
    sampler: SamplerName
    ratio: float
    propagators: tuple[PropagatorName, ...]
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def parent_based(self) -> bool:
        return self.sampler.startswith("parentbased_")

    @property
    def b3(self) -> bool:
        return "b3" in self.propagators or "b3multi" in self.propagators


def resolve_tracing(
    config: TracingConfig, env: Mapping[str, str], default_service_name: str
) -> TracingSettings:
    """The settings for ``config`` in environment ``env``; never raises."""
    warnings: list[str] = []
    enabled = config.enabled and not _true(env.get("OTEL_SDK_DISABLED"))
    resource = _parse_resource(env.get("OTEL_RESOURCE_ATTRIBUTES", ""), warnings)
    resource.update(config.resource_attributes)
    service_name = (
        config.service_name
        or _clean(env.get("OTEL_SERVICE_NAME"))
        or resource.get("service.name")
        or default_service_name
    )
    resource["service.name"] = service_name
    return TracingSettings(
        enabled=enabled,
        service_name=service_name,
        endpoint=_endpoint(config, env),
        sampler=_sampler(config, env, warnings),
        ratio=_ratio(config, env, warnings),
        propagators=_propagators(config, env, warnings),
        resource_attributes=resource,
        warnings=tuple(warnings),
    )


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _parse_resource(text: str, warnings: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            warnings.append(f"OTEL_RESOURCE_ATTRIBUTES: ignored {item.strip()!r} (expected k=v)")
            continue
        out[urllib.parse.unquote(key)] = urllib.parse.unquote(value.strip())
    return out


def traces_url(base: str) -> str:
    """A base URL with ``/v1/traces`` appended (once)."""
    base = base.strip().rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def _endpoint(config: TracingConfig, env: Mapping[str, str]) -> str | None:
    if config.otlp_endpoint:
        return traces_url(config.otlp_endpoint)
    exporter = (_clean(env.get("OTEL_TRACES_EXPORTER")) or "").lower()
    if exporter == "none":
        return None
    signal = _clean(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if signal:
        return signal
    generic = _clean(env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if generic:
        return traces_url(generic)
    # Asked for OTLP explicitly but gave no endpoint: the spec's default.
    return DEFAULT_LOCAL_ENDPOINT if exporter == "otlp" else None


def _sampler(config: TracingConfig, env: Mapping[str, str], warnings: list[str]) -> SamplerName:
    if config.sampler is not None:
        return config.sampler
    name = (_clean(env.get("OTEL_TRACES_SAMPLER")) or "").lower()
    if not name:
        return DEFAULT_SAMPLER
    if name not in _SAMPLERS:
        warnings.append(f"OTEL_TRACES_SAMPLER={name!r} is not supported; using {DEFAULT_SAMPLER}")
        return DEFAULT_SAMPLER
    return name  # type: ignore[return-value]  # checked against the Literal's values


def _ratio(config: TracingConfig, env: Mapping[str, str], warnings: list[str]) -> float:
    if config.sampler_ratio is not None:
        return config.sampler_ratio
    raw = _clean(env.get("OTEL_TRACES_SAMPLER_ARG"))
    if raw is None:
        return DEFAULT_RATIO
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        warnings.append(f"OTEL_TRACES_SAMPLER_ARG={raw!r} is not in [0, 1]; using {DEFAULT_RATIO}")
        return DEFAULT_RATIO
    return value


def _propagators(
    config: TracingConfig, env: Mapping[str, str], warnings: list[str]
) -> tuple[PropagatorName, ...]:
    if config.propagators is not None:
        return tuple(dict.fromkeys(config.propagators))
    raw = _clean(env.get("OTEL_PROPAGATORS"))
    if raw is None:
        return DEFAULT_PROPAGATORS
    chosen: list[PropagatorName] = []
    for name in (n.strip().lower() for n in raw.split(",")):
        if not name or name == "none":
            continue
        if name not in _PROPAGATORS:
            warnings.append(f"OTEL_PROPAGATORS: {name!r} is not supported; ignored")
            continue
        if name not in chosen:
            chosen.append(name)  # type: ignore[arg-type]  # checked against the Literal
    return tuple(chosen) or DEFAULT_PROPAGATORS
