"""TLS and plain HTTP on one port (mesh/sniffing_site.py): real sockets, real handshakes
with a test Connect CA, on asyncio's event loop and on uvloop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import web

from demo.processes import port_open
from mesh.mtls.contexts import MeshTls
from mesh.mtls.material import Leaf, Roots
from mesh.server import Listener
from mesh.snapshot import Instance
from mesh.sniffing_site import TLS_HANDSHAKE_RECORD, TlsSniffingSite, starts_tls
from tests.mesh.mtls.connect_ca import ConnectCa

Runner = Callable[[Coroutine[Any, Any, None]], None]
LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


def mesh_tls(ca: ConnectCa, service: str) -> MeshTls:
    tls = MeshTls(service, require=False)
    tls.update(Leaf.from_consul(ca.leaf(service)), Roots.from_consul(ca.roots()))
    return tls


def client_context(ca: ConnectCa, caller: str, callee: str) -> ssl.SSLContext:
    """``caller``'s client context for calling ``callee`` (with its certificate)."""
    upstream = mesh_tls(ca, caller).for_instance(
        Instance(id=f"{callee}-1", service=callee, address="127.0.0.1", port=1, mesh_tls=True)
    )
    assert upstream is not None
    return upstream.context


async def which_protocol(request: web.BaseRequest) -> web.Response:
    transport = request.transport
    tls = transport is not None and transport.get_extra_info("ssl_object") is not None
    return web.Response(text="tls" if tls else "plain")


@asynccontextmanager
async def sniffing_site(
    server_context: ssl.SSLContext, outcomes: Outcomes, **options: Any
) -> AsyncIterator[int]:
    runner = web.ServerRunner(web.Server(which_protocol), handle_signals=False)
    await runner.setup()
    site = TlsSniffingSite(
        runner,
        "127.0.0.1",
        0,
        ssl_context=server_context,
        on_connection=outcomes.append,
        **options,
    )
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def get(url: str, context: ssl.SSLContext | bool = False) -> str:
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as resp:
        assert resp.status == 200
        return await resp.text()


class Outcomes(list[str]):
    """What the site reported for each connection, in order; :meth:`wait` for more."""

    def __init__(self) -> None:
        super().__init__()
        self._reported = asyncio.Queue[None]()

    def append(self, outcome: str) -> None:
        super().append(outcome)
        self._reported.put_nowait(None)

    async def wait(self, count: int) -> None:
        """Until ``count`` connections are reported (five seconds at most)."""
        async with asyncio.timeout(5):
            while len(self) < count:
                await self._reported.get()


def test_a_tls_record_is_told_from_an_http_request_line() -> None:
    assert starts_tls(bytes([TLS_HANDSHAKE_RECORD, 3, 1]))
    for first in (b"GET / HTTP/1.1", b"P", b"\x80", b""):
        assert not starts_tls(first[:1])


@LOOPS
def test_tls_and_plain_http_are_served_on_one_port(run: Runner) -> None:
    ca = ConnectCa()
    server = mesh_tls(ca, "users")
    outcomes = Outcomes()

    async def scenario() -> None:
        async with sniffing_site(server.server.context, outcomes) as port:
            assert await get(f"http://127.0.0.1:{port}/") == "plain"
            tls = client_context(ca, "web", "users")
            assert await get(f"https://127.0.0.1:{port}/", tls) == "tls"

    run(scenario())
    assert outcomes == ["plaintext", "tls"]


@LOOPS
def test_a_refused_handshake_is_counted_and_closes_the_connection(run: Runner) -> None:
    ca = ConnectCa()
    server = mesh_tls(ca, "users")
    outcomes = Outcomes()
    no_certificate = ssl.create_default_context(cadata=ca.roots()["Roots"][0]["RootCert"])
    no_certificate.check_hostname = False

    async def scenario() -> None:
        async with sniffing_site(server.server.context, outcomes) as port:
            # One connection (aiohttp's client would try a GET twice): the client
            # completes its side of a TLS 1.3 handshake, then reads the refusal.
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=no_certificate)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = await reader.read()
            except (ssl.SSLError, ConnectionError):  # the alert, read as an error
                answer = b""
            assert answer == b"", answer  # no HTTP answer: the connection was refused
            writer.close()
            await outcomes.wait(1)
            assert outcomes == ["tls_refused"]
            # The port serves on.
            assert await get(f"http://127.0.0.1:{port}/") == "plain"

    run(scenario())
    assert outcomes == ["tls_refused", "plaintext"]


@LOOPS
def test_a_silent_connection_is_closed_after_the_first_byte_timeout(run: Runner) -> None:
    server = mesh_tls(ConnectCa(), "users")
    outcomes = Outcomes()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with sniffing_site(server.server.context, outcomes, first_byte_timeout=0.2) as port:
            silent = socket.create_connection(("127.0.0.1", port))
            silent.setblocking(False)
            # The server closes it: the client reads the end of the stream.
            async with asyncio.timeout(5):
                assert await loop.sock_recv(silent, 1) == b""
            silent.close()
            # One that closes before saying anything is counted the same way.
            socket.create_connection(("127.0.0.1", port)).close()
            await outcomes.wait(2)

    run(scenario())
    assert outcomes == ["no_data", "no_data"]


@LOOPS
def test_stopping_closes_the_port_and_connections_not_yet_handed_over(run: Runner) -> None:
    server = mesh_tls(ConnectCa(), "users")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = Listener(
            "inbound",
            which_protocol,
            "127.0.0.1",
            0,
            ssl_context=server.server.context,
            plain_too=True,
        )
        await listener.start()
        port = listener.port
        assert await get(f"http://127.0.0.1:{port}/") == "plain"
        silent = socket.create_connection(("127.0.0.1", port))
        silent.setblocking(False)
        await asyncio.sleep(0.05)  # accepted, waiting for its first byte
        async with asyncio.timeout(5):
            await listener.stop()
            assert await loop.sock_recv(silent, 1) == b""
        silent.close()
        assert not port_open("127.0.0.1", port)

    run(scenario())
