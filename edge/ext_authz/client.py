"""Sending one check to the authorization service, and reading its whole answer.

Where the check goes is picked first (:meth:`AuthzClient.pick`), so that the caller can
name it in the check's CLIENT span and write that span's context into the check, then
the check is sent (:meth:`AuthzClient.send`). Two clients:

* :class:`TransportClient`: a ``service`` in the catalog (a healthy instance per check,
  round robin; mutual TLS to a Connect-native instance with the edge's mesh TLS, its
  certificate checked before anything is sent) or a plain ``http://`` URL, through the
  proxy's own upstream transport: its keep-alive pool, and its per-request cost;
* :class:`HttpsClient`: an ``https://`` URL, through one aiohttp session (keep-alive,
  the system's CA bundle, the host name checked), made at the first check.

Contract of ``send``: one attempt, redirects not followed (a 3xx is an answer); the
whole exchange (connecting, sending, the head and the body) within ``timeout_s``; the
body read up to :data:`edge.ext_authz.policy.MAX_ANSWER_BYTES` (past it the answer
keeps no body, and its connection is closed rather than pooled); every failure to get
an answer is a :class:`CheckFailed` naming why, never anything else.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from edge.auth.http_body import BodyTooLarge, read_bounded
from edge.auth.service_fetch import AnswerTooLarge, fetch
from edge.auth.service_url import NoHealthyInstance, ServiceUrl
from edge.ext_authz.policy import MAX_ANSWER_BYTES
from mesh.mtls.contexts import MeshTls
from mesh.snapshot import Snapshot
from mesh.transport.base import (
    PeerTls,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamTransport,
)
from mesh.transport.h1_head import authority

FailureReason = Literal["no_instance", "unreachable", "timeout", "broken", "server_error"]
"""Why a check got no usable answer: no healthy instance of the service; no connection
(or a peer mesh TLS refused); no whole answer in time; the exchange broke after it
began; a 5xx answer (the service could not decide: raised by no client, made by the
filter from the answer)."""


class CheckFailed(Exception):
    """The check got no usable answer; ``reason`` says why (a :data:`FailureReason`)."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: FailureReason = reason


@dataclass(frozen=True, slots=True)
class Answer:
    """The authorization service's whole answer."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes | None
    """None: longer than :data:`MAX_ANSWER_BYTES` (not kept)."""


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one check goes."""

    scheme: str
    host: str
    port: int
    name: str
    """The instance id, or the URL's authority."""
    tls: PeerTls | None = None
    """Mesh TLS to this instance (None: plain HTTP, or an https URL's own TLS)."""

    @property
    def authority(self) -> str:
        return authority(self.host, self.port)


class AuthzClient(Protocol):
    def pick(self) -> Destination:
        """Where the next check goes; CheckFailed("no_instance") when nowhere."""
        ...

    async def send(
        self,
        destination: Destination,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes | None,
        timeout_s: float,
    ) -> Answer:
        """Send one check; see the module docstring for the contract."""
        ...

    def describe(self) -> str: ...


class TransportClient:
    """Checks through the proxy's transport, to a service's healthy instances (round
    robin, from ``snapshot()`` at each check) or to one fixed ``host:port``."""

    def __init__(
        self,
        transport: UpstreamTransport,
        *,
        service: str | None = None,
        address: tuple[str, int] | None = None,
        snapshot: Callable[[], Snapshot] | None = None,
        mesh_tls: MeshTls | None = None,
    ) -> None:
        """Exactly one of ``service`` (with ``snapshot``) and ``address``."""
        if (service is None) == (address is None) or (service is not None and snapshot is None):
            raise ValueError("give a service and a snapshot, or an address")
        self._transport = transport
        self._service = service
        self._endpoint = None
        if service is not None and snapshot is not None:
            self._endpoint = ServiceUrl(snapshot, service, "")
        self._mesh_tls = mesh_tls
        self._fixed = None
        if address is not None:
            host, port = address
            self._fixed = Destination("http", host, port, authority(host, port))

    def pick(self) -> Destination:
        fixed = self._fixed
        if fixed is not None:
            return fixed
        assert self._endpoint is not None  # see __init__
        try:
            instance = self._endpoint.instance()
        except NoHealthyInstance as exc:
            raise CheckFailed("no_instance", str(exc)) from None
        tls = self._mesh_tls.for_instance(instance) if self._mesh_tls is not None else None
        return Destination("http", instance.address, instance.port, instance.id, tls)

    async def send(
        self,
        destination: Destination,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes | None,
        timeout_s: float,
    ) -> Answer:
        where = destination.name
        try:
            found = await fetch(
                self._transport,
                destination.host,
                destination.port,
                destination.tls,
                where=where,
                method=method,
                target=target,
                headers=headers,
                body=body,
                timeout_s=timeout_s,
                max_body_bytes=MAX_ANSWER_BYTES,
            )
        except AnswerTooLarge as exc:
            return Answer(exc.status, exc.headers, None)
        except UpstreamTimeout:
            raise CheckFailed(
                "timeout", f"{where} gave no whole answer within {timeout_s:g}s"
            ) from None
        except UpstreamConnectError as exc:
            raise CheckFailed("unreachable", f"cannot reach {where}: {exc}") from None
        except UpstreamError as exc:
            raise CheckFailed("broken", f"the exchange with {where} failed: {exc}") from None
        return Answer(found.status, found.headers, found.body)

    def describe(self) -> str:
        if self._fixed is not None:
            return f"http://{self._fixed.authority}"
        tls = " (mesh TLS to Connect-native instances)" if self._mesh_tls is not None else ""
        return f"service {self._service}{tls}"


class SharedSession:
    """One aiohttp session, made when first asked for (on the event loop), closed once."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpsClient:
    """Checks to a fixed ``https://host[:port]``, through ``sessions``' session."""

    def __init__(
        self, url: str, sessions: SharedSession, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """``ssl_context``: how the service's certificate is checked (None: aiohttp's
        default, the system's CA bundle and the host name)."""
        self._ssl: ssl.SSLContext | bool = True if ssl_context is None else ssl_context
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or 443
        self._base = f"https://{authority(host, port)}"
        self._destination = Destination("https", host, port, authority(host, port))
        self._sessions = sessions

    def pick(self) -> Destination:
        return self._destination

    async def send(
        self,
        destination: Destination,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes | None,
        timeout_s: float,
    ) -> Answer:
        where = destination.name
        try:
            async with (
                asyncio.timeout(timeout_s),
                self._sessions.get().request(
                    method,
                    self._base + target,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    ssl=self._ssl,
                    timeout=aiohttp.ClientTimeout(total=None),
                ) as response,
            ):
                try:
                    content: bytes | None = await read_bounded(response, MAX_ANSWER_BYTES)
                except BodyTooLarge:
                    content = None  # not kept: the answer all the same
                return Answer(response.status, response.headers, content)
        except TimeoutError:
            raise CheckFailed(
                "timeout", f"{where} gave no whole answer within {timeout_s:g}s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise CheckFailed("unreachable", f"cannot reach {where}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise CheckFailed("broken", f"the exchange with {where} failed: {exc}") from None

    def describe(self) -> str:
        return self._base
