"""Listeners and their lifecycle: start, then drain in a written-down order.

Drain order on shutdown (uvicorn/aiohttp style):
1. the owner fails readiness and deregisters (done by the caller first);
2. ``drain_delay`` passes so load balancers notice;
3. listeners stop accepting;
4. in-flight requests finish, up to ``shutdown_timeout``;
5. connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from mesh.connections import ConnectionLimits, ConnectionObserver, LimitedServer
from mesh.sniffing_site import TlsSniffingSite

log = logging.getLogger(__name__)


class Listener:
    """One TCP listener running an aiohttp low-level handler (or an Application)."""

    def __init__(
        self,
        name: str,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]] | web.Application,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        shutdown_timeout: float = 30.0,
        max_field_size: int = 8190,
        connections: ConnectionLimits | None = None,
        connection_observer: ConnectionObserver | None = None,
        plain_too: bool = False,
        on_connection: Callable[[str], None] | None = None,
        unix_path: str | None = None,
    ) -> None:
        """``max_field_size``: longest header value accepted (aiohttp's default); longer
        ones get a 400 from the HTTP parser before any handler runs.

        ``connections`` bounds the client connections of a low-level handler's
        listener (see :mod:`mesh.connections`), and ``connection_observer`` is
        told of each one opened, closed or refused; an Application's listener
        (the admin one) takes neither.

        ``plain_too`` (with ``ssl_context``): plain-HTTP connections are served on the
        same port, each connection's first byte deciding (see
        :mod:`mesh.sniffing_site`, which tells ``on_connection`` what each became).

        ``unix_path``: the same handler also answers on this Unix socket (an edge
        worker's admin listener, for the other workers: :mod:`mesh.admin_workers`)."""
        self.name = name
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._reuse_port = reuse_port
        self._plain_too = plain_too and ssl_context is not None
        self._on_connection = on_connection
        self._unix_path = unix_path
        runner: web.BaseRunner
        if isinstance(handler, web.Application):
            runner = web.AppRunner(
                handler, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout
            )
        else:
            server = LimitedServer(
                handler,
                connections or ConnectionLimits(),
                connection_observer,
                access_log=None,
                max_field_size=max_field_size,
            )
            runner = web.ServerRunner(
                server, handle_signals=False, shutdown_timeout=shutdown_timeout
            )
        self._runner = runner
        self._listening = False

    @property
    def listening(self) -> bool:
        """True once :meth:`start` has opened the port, until :meth:`stop` begins.

        Readiness reports this: a process whose catalog is in but whose port is
        not open yet (or no longer) must not be sent traffic.
        """
        return self._listening

    async def start(self) -> None:
        await self._runner.setup()
        site: web.BaseSite
        if self._plain_too and self._ssl is not None:
            site = TlsSniffingSite(
                self._runner,
                self.host,
                self.port,
                ssl_context=self._ssl,
                reuse_port=self._reuse_port,
                on_connection=self._on_connection,
            )
        else:
            site = web.TCPSite(
                self._runner,
                self.host,
                self.port,
                ssl_context=self._ssl,
                reuse_port=self._reuse_port or None,
                backlog=1024,
            )
        await site.start()
        if self.port == 0 and self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])
        if self._unix_path is not None:
            await web.UnixSite(self._runner, self._unix_path).start()
        self._listening = True
        log.info("%s listening on %s:%s", self.name, self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the shutdown timeout), close."""
        self._listening = False
        await self._runner.cleanup()


async def wait_for_termination() -> str:
    """Return the name of the first SIGTERM/SIGINT received."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[str] = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):

        def on_signal(s: signal.Signals = sig) -> None:
            if not received.done():
                received.set_result(s.name)

        loop.add_signal_handler(sig, on_signal)
    try:
        return await received
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def settle_heap() -> None:
    """Call once start-up is done: move every object alive now out of the collector's sight.

    Config, snapshot, route tables and imported modules live for the whole
    process; freezing them means a full collection no longer walks them, which
    took tens of microseconds per request under load (measured with py-spy).
    The young-generation threshold is raised for the same reason: a proxy makes
    many short-lived objects per request, nearly all of them freed by refcount.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def install_fast_loop() -> None:
    """Use uvloop when it is installed: same semantics, a faster event loop."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
