"""The scenarios: what each one starts, and the URL (and headers) wrk loads.

A scenario starts its processes through the context (``ctx.spawn``,
``ctx.meshgate``, ...), so they are stopped right after its measurement, and
returns a :class:`Target` once the URL answers 200. Every scenario ends at the
same upstream nginx (``ctx.upstream_port``).

Adding one:

* another proxy or server: a function decorated with ``@scenario(name, description)``;
* a variant of the edge (auth, rate limits, tracing ...): one more
  ``EdgeScenario(name, extra_config, headers)`` in :data:`SCENARIOS`, where
  ``extra_config`` is merged into the edge's YAML config and ``headers`` are
  sent by wrk with every request. Either may be a function of the context, for
  values only known at run time (``lambda ctx: {"redis": {"url": ctx.redis.url}}``).
"""

from __future__ import annotations

import contextlib
import gzip
import re
import sys
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from bench.auth_nodes import (
    apikey_edge_config,
    apikey_headers,
    bearer_passthrough_config,
    jwt_edge_config,
    jwt_headers,
)
from bench.context import BenchContext, ScenarioFailed
from bench.mesh_nodes import register_upstream, start_edge, start_sidecar
from bench.mtls_proxies import start_nginx_pair
from bench.proxies import (
    BIG_BODY,
    BIG_PATH,
    start_haproxy,
    start_nginx_cache,
    start_nginx_proxy,
)
from bench.ratelimit_nodes import (
    MANY_CALLERS,
    hot_key_edge_config,
    local_only_edge_config,
    many_callers_edge_config,
    many_callers_script,
    new_key_edge_config,
)
from bench.telemetry_nodes import NO_TELEMETRY, access_log_edge_config, tracing_edge_config
from bench.wrk import WrkOptions, WrkResult, run_wrk

T = TypeVar("T")
FromContext: TypeAlias = T | Callable[[BenchContext], T]
"""A value, or a function computing it from the context when the scenario starts."""


def _resolve(value: FromContext[T], ctx: BenchContext) -> T:
    if callable(value):
        return value(ctx)
    return value


@dataclass(frozen=True)
class Target:
    """What wrk loads: a URL that answered 200, and headers to send with every request."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    script: str | None = None
    """Path of a wrk Lua script (``wrk -s``), for requests that differ from one another."""

    def wrk(self, options: WrkOptions) -> tuple[WrkResult, str]:
        """Load this target with wrk (its headers and script): the report and its raw text."""
        return run_wrk(self.url, options, self.headers, self.script)


MAX_WARMUP_SECONDS = 300.0
"""The longest single warm-up run :func:`warm_up` tries before it gives up."""


def warm_up(target: Target, options: WrkOptions, requests: int = 0) -> None:
    """Load ``target`` with ``options``; again, twice as long each time, until one run
    completed ``requests`` (see :attr:`EdgeScenario.warm_requests`).

    Raises RuntimeError when a run longer than :data:`MAX_WARMUP_SECONDS` falls short.
    """
    seconds = options.duration
    while True:
        result, _ = target.wrk(replace(options, duration=seconds))
        if result.requests >= requests:
            return
        if seconds > MAX_WARMUP_SECONDS:
            raise RuntimeError(
                f"warm-up: {result.requests} requests in {seconds:g} s, {requests} needed"
            )
        seconds *= 2


class Scenario(ABC):
    name: str
    description: str
    compare_with: str | None = None
    """The scenario this one's feature is measured against (``edge+notrace`` for a
    tracing scenario): the run reports the change in req/s and CPU per request
    between the two, when both ran."""

    @abstractmethod
    def start(self, ctx: BenchContext) -> Target:
        """Start this scenario's processes and return once its URL answers 200.

        Raises bench.context.ScenarioFailed (with log tails) when it cannot.
        """


@dataclass(frozen=True)
class FunctionScenario(Scenario):
    name: str
    description: str
    starter: Callable[[BenchContext], Target]
    compare_with: str | None = None

    def start(self, ctx: BenchContext) -> Target:
        return self.starter(ctx)


def scenario(
    name: str, description: str, compare_with: str | None = None
) -> Callable[[Callable[[BenchContext], Target]], Scenario]:
    """Decorator turning ``def f(ctx) -> Target`` into a scenario."""

    def wrap(fn: Callable[[BenchContext], Target]) -> Scenario:
        return FunctionScenario(name, description, fn, compare_with)

    return wrap


@scenario("upstream", "wrk straight to the upstream nginx: the ceiling of this machine")
def upstream(ctx: BenchContext) -> Target:
    return Target(f"http://127.0.0.1:{ctx.upstream_port}/")


@scenario("nginx", "nginx (1 worker, keep-alive upstream pool) proxying to the upstream")
def nginx_proxy(ctx: BenchContext) -> Target:
    return Target(f"{start_nginx_proxy(ctx)}/")


@scenario("haproxy", "HAProxy (nbthread 1, http-reuse always) proxying to the upstream")
def haproxy(ctx: BenchContext) -> Target:
    return Target(f"{start_haproxy(ctx)}/")


GZIP_ACCEPT = {"Accept-Encoding": "gzip"}


def require_encoding(url: str, headers: Mapping[str, str], encoding: str | None) -> None:
    """Raise ScenarioFailed unless GET ``url`` answers with this ``Content-Encoding`` (None:
    without one), so that a compression scenario cannot measure uncompressed answers."""
    req = urllib.request.Request(url, headers=dict(headers))
    with urllib.request.urlopen(req, timeout=5) as resp:
        found = resp.headers.get("Content-Encoding")
        body = resp.read()
    if found != encoding:
        raise ScenarioFailed(f"{url} answered Content-Encoding {found!r}, not {encoding!r}")
    size = len(gzip.decompress(body) if encoding == "gzip" else body)
    if size != len(BIG_BODY):
        raise ScenarioFailed(f"{url} answered {size} bytes, not {len(BIG_BODY)}")


def require_header(url: str, headers: Mapping[str, str], name: str, prefix: str) -> None:
    """Raise ScenarioFailed unless GET ``url`` (asked twice: the first may fill a cache)
    answers with a ``name`` header starting with ``prefix``, so that a cache scenario
    cannot measure answers that were not hits."""
    found = None
    for _ in range(2):
        req = urllib.request.Request(url, headers=dict(headers))
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
            found = resp.headers.get(name)
    if found is None or not found.startswith(prefix):
        raise ScenarioFailed(f"{url} answered {name}: {found!r}, not {prefix}...")


@scenario(
    "nginx+cache",
    "nginx with proxy_cache (kept 60 s, proxy_cache_lock on): every request a hit",
    compare_with="nginx",
)
def nginx_cache(ctx: BenchContext) -> Target:
    url = f"{start_nginx_cache(ctx)}/"
    require_header(url, {}, "X-Cache-Status", "HIT")
    return Target(url)


@scenario("nginx+nginx", "nginx → nginx → upstream: two C proxy hops, as edge+sidecar has two")
def nginx_pair(ctx: BenchContext) -> Target:
    return Target(f"{start_nginx_pair(ctx, mtls=False)}/")


@scenario(
    "nginx+nginx+mtls",
    "nginx → nginx over mutual TLS (certificates from Consul's Connect CA) → upstream",
    compare_with="nginx+nginx",
)
def nginx_pair_mtls(ctx: BenchContext) -> Target:
    return Target(f"{start_nginx_pair(ctx, mtls=True)}/")


@scenario(
    "nginx+gzip",
    f"nginx proxying the upstream's 10 KB JSON ({BIG_PATH}), gzipped (level 6) for the client",
)
def nginx_gzip(ctx: BenchContext) -> Target:
    url = f"{start_nginx_proxy(ctx, gzip=True)}{BIG_PATH}"
    require_encoding(url, GZIP_ACCEPT, "gzip")
    return Target(url, GZIP_ACCEPT)


@dataclass(frozen=True)
class EdgeScenario(Scenario):
    """The meshgate edge, routing ``/`` to a service it finds in Consul.

    ``extra_config`` is merged into the edge's config (mappings key by key);
    ``headers`` go with every request, including the readiness probe. With
    ``via_sidecar`` the route's service is a meshgate sidecar in front of the
    upstream (``sidecar_config`` merged into its config); without, it is the
    upstream itself, registered in Consul with no health check.
    """

    name: str
    extra_config: FromContext[Mapping[str, Any]] = field(default_factory=dict)
    headers: FromContext[Mapping[str, str]] = field(default_factory=dict)
    description: str = ""
    via_sidecar: bool = False
    sidecar_config: FromContext[Mapping[str, Any]] = field(default_factory=dict)
    path: str = "/"
    """Path wrk requests (the route's prefix is ``/``)."""
    script: Callable[[BenchContext], str] | None = None
    """Writes a wrk Lua script into the work directory and returns its path (``wrk -s``)."""
    compare_with: str | None = None
    """See :attr:`Scenario.compare_with`."""
    content_encoding: str | None = None
    """With ``path`` :data:`BIG_PATH`: the ``Content-Encoding`` the answer must have
    (checked once before measuring; None: none)."""
    route: FromContext[Mapping[str, Any]] = field(default_factory=dict)
    """More keys of the edge's one route (``/`` to the service), e.g. a ``mirror`` or a
    ``hash_policy``."""
    cache_status: str | None = None
    """What the answer's ``Cache-Status`` must start with (checked once before
    measuring, e.g. ``meshgate; hit``); None: not checked."""
    warm_requests: int = 0
    """Requests one warm-up run must complete before a measurement counts, for a
    scenario whose steady state needs them (the many-callers script starts its
    cycle of callers again with every wrk run: a warm-up shorter than the
    window would leave the window's callers unseen, the new-key case instead
    of the steady state). The wrk bench's warm-ups are long enough as they
    are; ``bench.instructions``, whose warm-ups run under valgrind, repeats
    its warm-up longer until one gets there."""

    def start(self, ctx: BenchContext) -> Target:
        if self.via_sidecar:
            own = _own_service(self.name)
            service = start_sidecar(ctx, _resolve(self.sidecar_config, ctx), own).service
        else:
            service = register_upstream(ctx)
        route = {"prefix": "/", "service": service, **_resolve(self.route, ctx)}
        edge = start_edge(ctx, [route], _resolve(self.extra_config, ctx))
        headers = dict(_resolve(self.headers, ctx))
        url = f"{edge.url}{self.path}"
        ctx.wait_serving(url, [edge.process], headers)
        if self.path == BIG_PATH:
            require_encoding(url, headers, self.content_encoding)
        if self.cache_status is not None:
            require_header(url, headers, "Cache-Status", self.cache_status)
        return Target(url, headers, self.script(ctx) if self.script is not None else None)


def _own_service(scenario: str) -> str:
    """The Consul service name of a scenario's own sidecar (``bench-edge-sidecar-mtls``
    for ``edge+sidecar+mtls``): two scenarios up at once never share one."""
    return "bench-" + re.sub(r"[^A-Za-z0-9]+", "-", scenario)


@dataclass(frozen=True)
class OutboundScenario(Scenario):
    """A meshgate sidecar's outbound listener, as its app calls another service: wrk →
    the sidecar (``/<service>/``) → the upstream, found in Consul. The sidecar's own
    service is a name of the scenario's own, its ``resilience`` for the upstream
    service ``upstream`` (merged under ``resilience.services.<upstream service>``)."""

    name: str
    description: str = ""
    compare_with: str | None = None
    upstream: FromContext[Mapping[str, Any]] = field(default_factory=dict)
    headers: FromContext[Mapping[str, str]] = field(default_factory=dict)

    def start(self, ctx: BenchContext) -> Target:
        called = register_upstream(ctx)
        own = _own_service(self.name)
        resilience = {"resilience": {"services": {called: dict(_resolve(self.upstream, ctx))}}}
        sidecar = start_sidecar(ctx, resilience, own)
        headers = dict(_resolve(self.headers, ctx))
        url = f"http://127.0.0.1:{sidecar.outbound}/{called}/"
        ctx.wait_serving(url, [sidecar.process], headers)
        return Target(url, headers)


@dataclass(frozen=True)
class InboundScenario(Scenario):
    """A meshgate sidecar's inbound listener, as the edge or a peer's sidecar reaches its
    service: wrk → the sidecar's inbound port → its app (the upstream nginx). The hop
    every request into a service takes, measured without the edge in front."""

    name: str
    description: str = ""
    compare_with: str | None = None

    def start(self, ctx: BenchContext) -> Target:
        sidecar = start_sidecar(ctx, None, _own_service(self.name))
        url = f"http://127.0.0.1:{sidecar.inbound}/"
        ctx.wait_serving(url, [sidecar.process])
        return Target(url, {})


MESH_TLS = {"mesh_tls": {"enabled": True, "require": True}}
"""Mesh TLS on both sides; ``require``, so a plain-HTTP hop can never be measured instead."""

OUTLIER_DETECTION = {"outlier_detection": {"enabled": True}}
LOCALITY = {"discovery": {"locality": {"zone": "bench-a", "region": "bench"}}}

SHADOW_SERVICE = "bench-shadow"


def mirror_route(ctx: BenchContext) -> Mapping[str, Any]:
    """A mirror of every request to the upstream nginx, registered again as the shadow
    service (so the upstream takes each request twice)."""
    shadow_id = f"{SHADOW_SERVICE}-1"
    ctx.register_service(SHADOW_SERVICE, shadow_id, ctx.upstream_port)
    ctx.wait_for(lambda: shadow_id in ctx.passing_ids(SHADOW_SERVICE), "shadow in Consul")
    return {"mirror": {"service": SHADOW_SERVICE, "percent": 100}}


AUTHZ_SERVICE = "bench-authz"


def ext_authz_config(ctx: BenchContext) -> Mapping[str, Any]:
    """External authorization of every request by an always-allowing service: the
    upstream nginx (200 to any path), registered again as the authorization service, so
    the checks run on the upstream's side of the bench, not on the proxy's core."""
    authz_id = f"{AUTHZ_SERVICE}-1"
    ctx.register_service(AUTHZ_SERVICE, authz_id, ctx.upstream_port)
    ctx.wait_for(lambda: authz_id in ctx.passing_ids(AUTHZ_SERVICE), "authz in Consul")
    return {"ext_authz": {"service": AUTHZ_SERVICE, "path_prefix": "/check", "timeout": "2s"}}


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        upstream,
        nginx_proxy,
        haproxy,
        EdgeScenario(
            "edge",
            description="meshgate edge → upstream (instance found in Consul)",
        ),
        EdgeScenario(
            "edge+outliers",
            compare_with="edge",
            extra_config=OUTLIER_DETECTION,
            description="edge with outlier detection: every attempt admitted and recorded "
            "by its instance's breaker (none ever ejected)",
        ),
        EdgeScenario(
            "edge+mirror",
            compare_with="edge",
            route=mirror_route,
            description="edge mirroring every request (percent: 100) to a shadow service "
            "(the same upstream, registered again): each copy sent, answered and discarded",
        ),
        EdgeScenario(
            "edge+extauthz",
            compare_with="edge",
            extra_config=ext_authz_config,
            description="edge asking an external authorization service about every request "
            "(ext_authz; the upstream nginx, registered again, allowing all): one check "
            "round trip per request through the proxy's keep-alive pool",
        ),
        EdgeScenario(
            "edge+maglev",
            compare_with="edge",
            route={"hash_policy": [{"header": "X-Session-Id"}]},
            headers={"X-Session-Id": "user-7"},
            description="edge with a hash policy on the route and the key in every request: "
            "the key read and hashed, the instance looked up in a Maglev table",
        ),
        EdgeScenario(
            "edge+limits",
            compare_with="edge",
            extra_config={"upstream_limits": {"max_requests": 1024}},
            description="edge with upstream_limits on, never reached (64 connections, 1,024 "
            "allowed): each request counted in and out of its service's requests in flight",
        ),
        EdgeScenario(
            "edge+locality",
            compare_with="edge",
            extra_config=LOCALITY,
            description="edge with discovery.locality: the upstream, registered without a "
            "zone, is never local, so every request takes the remembered 'any' choice and "
            "counts it",
        ),
        EdgeScenario(
            "edge+retries",
            compare_with="edge",
            route={"retries": {}},
            description="edge with a retry policy on the route (every default), the "
            "upstream always answering: the policy read, the budget counting each request, "
            "no retry ever made",
        ),
        EdgeScenario(
            "edge+cache-hit",
            compare_with="edge",
            route={"cache": {"ttl": "60s"}},
            cache_status="meshgate; hit",
            description="edge with a response cache on the route (ttl 60s, the upstream "
            "saying nothing of caching): every request after the first answered from the "
            "edge's store, the upstream untouched",
        ),
        nginx_cache,
        EdgeScenario(
            "edge+sidecar",
            compare_with="edge",
            description="meshgate edge → meshgate sidecar → upstream (the full mesh hop)",
            via_sidecar=True,
        ),
        EdgeScenario(
            "edge+sidecar+mtls",
            compare_with="edge+sidecar",
            extra_config=MESH_TLS,
            description="the full mesh hop over mutual TLS: certificates from Consul's "
            "Connect CA, the sidecar applying intentions",
            via_sidecar=True,
            sidecar_config=MESH_TLS,
        ),
        OutboundScenario(
            "sidecar-out",
            compare_with="edge",
            description="a meshgate sidecar's outbound listener, as its app calls another "
            "service: wrk → sidecar (breakers, retry budget, per-try timeout) → upstream",
        ),
        OutboundScenario(
            "sidecar-out+hash",
            compare_with="sidecar-out",
            upstream={"hash_policy": [{"header": "X-User-Id"}]},
            headers={"X-User-Id": "user-7"},
            description="sidecar-out with session affinity for the called service "
            "(hash_policy on a header every call carries: Maglev picks)",
        ),
        OutboundScenario(
            "sidecar-out+canary",
            compare_with="sidecar-out",
            upstream={"canary": {"tag": "canary", "weight": 10}},
            description="sidecar-out with a canary of the called service (10 %; no "
            "instance carries the tag, so every call's drawn side falls back to stable)",
        ),
        InboundScenario(
            "sidecar-in",
            compare_with="edge",
            description="a meshgate sidecar's inbound listener, as a request reaches its "
            "service: wrk → sidecar (inbound cap, deadline, identity) → the app",
        ),
        nginx_pair,
        nginx_pair_mtls,
        EdgeScenario(
            "edge+notrace",
            extra_config=NO_TELEMETRY,
            description="edge without tracing or access logs: what the telemetry "
            "scenarios compare with",
        ),
        EdgeScenario(
            "edge+trace0",
            compare_with="edge+notrace",
            extra_config=tracing_edge_config(0.0),
            description="tracing on, nothing sampled: every request still gets a trace "
            "context (traceparent, traceresponse)",
        ),
        EdgeScenario(
            "edge+trace10",
            compare_with="edge+notrace",
            extra_config=tracing_edge_config(0.1),
            description="tracing at the default 10 %, spans exported over OTLP/HTTP",
        ),
        EdgeScenario(
            "edge+trace10-unexported",
            compare_with="edge+notrace",
            extra_config=tracing_edge_config(0.1, export=False),
            description="tracing at 10 %, spans recorded but not exported (no endpoint): "
            "recording's share of edge+trace10",
        ),
        EdgeScenario(
            "edge+trace100-unexported",
            compare_with="edge+notrace",
            extra_config=tracing_edge_config(1.0, export=False),
            description="every request's spans recorded, none exported",
        ),
        EdgeScenario(
            "edge+trace100",
            compare_with="edge+notrace",
            extra_config=tracing_edge_config(1.0),
            description="every request traced and exported over OTLP/HTTP",
        ),
        EdgeScenario(
            "edge+accesslog",
            compare_with="edge+notrace",
            extra_config=access_log_edge_config,
            description="edge with a JSON access-log line per request (to a file), no tracing",
        ),
        EdgeScenario(
            "edge+jwt",
            compare_with="edge",
            extra_config=jwt_edge_config,
            headers=jwt_headers,
            description="edge with a bearer JWT on every request (verified once, then cached) "
            "and identity headers: the cached-token path",
        ),
        EdgeScenario(
            "edge+bearer-passthrough",
            compare_with="edge",
            extra_config=bearer_passthrough_config,
            headers=jwt_headers,
            description="edge without authentication, sent the same bearer JWT as edge+jwt "
            "(forwarded unchecked): the baseline for what checking it costs",
        ),
        EdgeScenario(
            "edge+jwt+idtoken",
            compare_with="edge",
            extra_config=lambda ctx: jwt_edge_config(ctx, identity_token=True),
            headers=jwt_headers,
            description="edge+jwt plus the identity token the edge signs for every request",
        ),
        EdgeScenario(
            "edge+apikey",
            compare_with="edge",
            extra_config=apikey_edge_config,
            headers=apikey_headers,
            description="edge with an API key on every request (Redis look-up cached 5 s) "
            "and identity headers",
        ),
        EdgeScenario(
            "edge+clientid",
            compare_with="edge",
            script=many_callers_script,
            description=f"edge without limits, loaded by the same wrk script as edge+ratelimit "
            f"(an X-Client-Id header cycling through {MANY_CALLERS:,} values): the baseline "
            "that isolates the limit's cost from carrying that header and running the script",
        ),
        EdgeScenario(
            "edge+ratelimit",
            compare_with="edge+clientid",
            extra_config=many_callers_edge_config,
            script=many_callers_script,
            warm_requests=MANY_CALLERS,
            description=f"edge with a global rate limit in Redis, {MANY_CALLERS:,} distinct "
            "callers in turn (an X-Client-Id header set by a wrk script; limits off: "
            "edge+clientid)",
        ),
        EdgeScenario(
            "edge+ratelimit-newkey",
            compare_with="edge",
            extra_config=new_key_edge_config,
            description="edge with a global rate limit in Redis, a brand-new key for every "
            "request (counted by request id): the worst case, every check a Redis write",
        ),
        EdgeScenario(
            "edge+ratelimit-hot",
            compare_with="edge",
            extra_config=hot_key_edge_config,
            description="edge with a global rate limit in Redis, one hot key for every request",
        ),
        nginx_gzip,
        EdgeScenario(
            "edge+big",
            path=BIG_PATH,
            headers=GZIP_ACCEPT,
            description=f"edge (defaults) → the upstream's 10 KB JSON ({BIG_PATH}), sent as "
            "it comes: edge+gzip's baseline",
        ),
        EdgeScenario(
            "edge+gzip",
            compare_with="edge+big",
            extra_config={"compression": {}},
            path=BIG_PATH,
            headers=GZIP_ACCEPT,
            content_encoding="gzip",
            description="edge+big with compression on: the 10 KB JSON gzipped for the client",
        ),
        EdgeScenario(
            "edge+ratelimit-local",
            compare_with="edge",
            extra_config=local_only_edge_config,
            description="rate limit decided in-process (Redis unreachable, local fallback): "
            "the floor of any approximate mode",
        ),
    )
}
"""Every scenario by name, in the order they run by default."""

BASELINE = "nginx"
"""Ratios are req/s of a scenario over req/s of this one, measured in the same run."""


def report_unknown(names: Sequence[str]) -> bool:
    """Say on standard error which of ``names`` are not scenarios; True when any is not."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"bench: unknown scenario(s) {', '.join(unknown)}", file=sys.stderr)
    return bool(unknown)


@contextlib.contextmanager
def warmed_proxy(
    ctx: BenchContext, name: str, prefix: Sequence[str], connections: int, warmup: float
) -> Iterator[tuple[Target, int]]:
    """Scenario ``name`` started with the command of the meshgate process it measures
    (the edge of an edge scenario, the sidecar of an outbound one) behind ``prefix`` (a
    tool that runs it, or ``env`` with variables), loaded for ``warmup`` seconds (longer
    if the scenario needs more requests, see :func:`warm_up`); yields its target and
    that process's id, and stops the scenario on leaving.

    What :mod:`bench.instructions` (``valgrind``) and :mod:`bench.opcodes` (a probe
    on ``PYTHONPATH``) measure in, each in its own window.
    """
    scenario = SCENARIOS[name]
    if isinstance(scenario, EdgeScenario):
        role, warm_requests = "edge", scenario.warm_requests
    elif isinstance(scenario, OutboundScenario | InboundScenario):
        role, warm_requests = "sidecar", 0
    else:
        raise SystemExit(f"{name} is not an edge or sidecar scenario")
    ctx.meshgate_prefix[role] = list(prefix)
    try:
        with ctx.scenario_scope():
            target = scenario.start(ctx)
            pid = _meshgate_pid(ctx, role)
            warm_up(target, WrkOptions(1, connections, warmup, timeout=10.0), warm_requests)
            yield target, pid
    finally:
        ctx.meshgate_prefix.pop(role, None)


def _meshgate_pid(ctx: BenchContext, role: str) -> int:
    """The process id of the ``meshgate <role>`` the current scope started (behind
    whatever prefix)."""
    for pid in ctx.scope_pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"meshgate" in argv and role.encode() in argv:
            return pid
    raise RuntimeError(f"the scenario started no {role}")
