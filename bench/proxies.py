"""nginx and HAProxy as the current user, with every path inside the work directory.

Both are tuned the way one would run them in front of an HTTP/1.1 upstream:
one worker (one thread), keep-alive to the client and a pool of kept-alive
connections to the upstream, no access log.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.context import BenchContext, ScenarioFailed
from demo.processes import ManagedProcess, free_port, port_open

UPSTREAM_BODY = '{"ok":true}'
BIG_PATH = "/big.json"
BIG_BODY = (
    '{"items":['
    + ",".join(
        f'{{"id":{i},"name":"item-{i}","price":{i * 37 % 1000}.{i % 100:02d},'
        f'"tags":["mesh","bench","{"abcdefgh"[i % 8]}"],"stock":{i * 13 % 97}}}'
        for i in range(120)
    )
    + "]}"
)
"""About 10 KB of JSON at :data:`BIG_PATH`, for the compression scenarios (gzip: ~2 KB)."""
GZIP_DIRECTIVES = """\
        gzip on;
        gzip_types application/json;
        gzip_min_length 1024;
        gzip_comp_level 6;
        gzip_proxied any;
        gzip_vary on;"""
"""nginx's gzip as the edge's ``compression`` does it (zlib level 6, as aiohttp's)."""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )


def nginx_conf(prefix: Path, http_body: str) -> str:
    """A whole nginx.conf: one process in the foreground, all paths under ``prefix``."""
    return f"""\
daemon off;
master_process off;
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    # Never make wrk reconnect: the default (1000) would add connects to every scenario.
    keepalive_requests 1000000;
    keepalive_timeout 75s;

{http_body}
}}
"""


def upstream_server_block(port: int, big_file: Path) -> str:
    """``{"ok":true}`` at every path but :data:`BIG_PATH`, served from ``big_file``."""
    return f"""\
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location / {{
            return 200 '{UPSTREAM_BODY}';
        }}
        location = {BIG_PATH} {{
            alias {big_file};
        }}
    }}"""


def proxy_server_block(
    port: int,
    upstream_port: int,
    gzip: bool = False,
    *,
    listen_tls: str = "",
    upstream_tls: str = "",
) -> str:
    """nginx proxying to ``upstream_port``; with ``gzip``, compressing JSON answers.

    ``listen_tls``: ``ssl_*`` directives, which make the listener TLS;
    ``upstream_tls``: ``proxy_ssl_*`` directives, the upstream then reached over TLS.
    """
    listen_ssl = " ssl" if listen_tls else ""
    scheme = "https" if upstream_tls else "http"
    return f"""\
    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port} backlog=4096{listen_ssl};
{listen_tls}
{GZIP_DIRECTIVES if gzip else ""}
        location / {{
            proxy_pass {scheme}://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{upstream_tls}
        }}
    }}"""


def cache_server_block(port: int, upstream_port: int, prefix: Path) -> str:
    """nginx proxying to ``upstream_port`` through ``proxy_cache`` (answers kept 60 s, as
    the edge's ``cache: {ttl: 60s}`` keeps the upstream's, which says nothing of caching);
    ``X-Cache-Status`` says HIT or MISS. The cache's files live under ``prefix``."""
    return f"""\
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=bench:10m max_size=64m
                     inactive=10m use_temp_path=off;

    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_valid 200 60s;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}"""


def ws_proxy_server_block(port: int, upstream_port: int) -> str:
    """nginx proxying WebSocket upgrades (and plain requests) to ``upstream_port``.

    The usual recipe: HTTP/1.1 upstream, the client's ``Upgrade`` passed on and
    ``Connection: upgrade`` set, and a read timeout long enough for quiet tunnels.
    No keep-alive pool: a switched connection is never reused.
    """
    return f"""\
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}"""


def haproxy_conf(
    prefix: Path, port: int, upstream_port: int, tunnel_timeout: str | None = None
) -> str:
    """The bench's HAProxy config; with ``tunnel_timeout`` (e.g. ``"1h"``) also ``timeout
    tunnel``, the idle limit of a switched (WebSocket) connection, which otherwise is
    ``timeout client``/``server``."""
    tunnel = f"    timeout tunnel {tunnel_timeout}\n" if tunnel_timeout is not None else ""
    return f"""\
global
    nbthread 1
    maxconn 4096
    pidfile {prefix}/haproxy.pid

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
{tunnel}
frontend bench
    bind 127.0.0.1:{port}
    default_backend bench_upstream

backend bench_upstream
    server upstream 127.0.0.1:{upstream_port}
"""


def start_nginx(
    ctx: BenchContext, name: str, http_body: str, port: int, *, probe: bool = True
) -> str:
    """Start an nginx whose http block is ``http_body``; return its base URL once ``/``
    answers 200 (``probe``) or, without ``probe``, once its port accepts connections."""
    binary = nginx_binary()
    if binary is None:
        raise ScenarioFailed("nginx not found (apt-get install nginx)")
    prefix = ctx.path(name)
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, http_body))
    # -e: the error log before the config is read (the compiled-in one is not writable).
    argv = [binary, "-p", str(prefix), "-e", f"{prefix}/error.log", "-c", str(conf)]
    proc = ctx.spawn(name, argv)
    url = f"http://127.0.0.1:{port}"
    if probe:
        _wait(ctx, proc, url, prefix / "error.log")
    else:
        ctx.wait_for(lambda: port_open("127.0.0.1", port), f"{name} listening", [proc])
    return url


def start_upstream(ctx: BenchContext) -> int:
    """The nginx every scenario ends at, serving ``{"ok":true}``; returns its port."""
    port = free_port()
    big_file = ctx.path("big.json")
    big_file.write_text(BIG_BODY)
    start_nginx(ctx, "nginx-upstream", upstream_server_block(port, big_file), port)
    return port


def start_nginx_proxy(ctx: BenchContext, gzip: bool = False) -> str:
    port = free_port()
    block = proxy_server_block(port, ctx.upstream_port, gzip)
    return start_nginx(ctx, "nginx-gzip-proxy" if gzip else "nginx-proxy", block, port)


def start_nginx_cache(ctx: BenchContext) -> str:
    """nginx (one worker) with ``proxy_cache`` in front of the upstream
    (:func:`cache_server_block`); returns its base URL."""
    port = free_port()
    name = "nginx-cache"
    block = cache_server_block(port, ctx.upstream_port, ctx.path(name))
    return start_nginx(ctx, name, block, port)


def start_nginx_ws_proxy(ctx: BenchContext) -> str:
    """nginx (one worker) proxying WebSocket upgrades to the upstream
    (:func:`ws_proxy_server_block`); returns its base URL."""
    port = free_port()
    return start_nginx(ctx, "nginx-ws-proxy", ws_proxy_server_block(port, ctx.upstream_port), port)


def start_haproxy(ctx: BenchContext, tunnel_timeout: str | None = None) -> str:
    """HAProxy in front of the upstream (``tunnel_timeout``: see :func:`haproxy_conf`);
    returns its base URL."""
    binary = haproxy_binary()
    if binary is None:
        raise ScenarioFailed("haproxy not found (apt-get install haproxy)")
    port = free_port()
    prefix = ctx.path("haproxy")
    prefix.mkdir(exist_ok=True)
    conf = prefix / "haproxy.cfg"
    conf.write_text(haproxy_conf(prefix, port, ctx.upstream_port, tunnel_timeout))
    # -db: stay in the foreground, no daemon.
    proc = ctx.spawn("haproxy", [binary, "-db", "-f", str(conf)])
    url = f"http://127.0.0.1:{port}"
    _wait(ctx, proc, url)
    return url


def _wait(ctx: BenchContext, proc: ManagedProcess, url: str, error_log: Path | None = None) -> None:
    try:
        ctx.wait_serving(f"{url}/", [proc], timeout=15)
    except ScenarioFailed as exc:
        extra = ""
        if error_log is not None and error_log.exists():
            extra = "\n" + error_log.read_text(errors="replace")[-2000:]
        raise ScenarioFailed(f"{exc}{extra}") from None
