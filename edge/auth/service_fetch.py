"""One request to one service instance through the edge's own upstream transport.

The edge calls the auth service (JWKS, introspection) this way when it finds the
service in the catalog and has mesh TLS on: the instance's sidecar then takes
only mutual TLS, and the transport (:class:`mesh.transport.fast.FastTransport`)
checks that the certificate the instance presents is its service's *before*
anything is sent (the caller's token included), which aiohttp cannot.

Contract of :func:`fetch_from_instance`:

- TLS as :meth:`mesh.mtls.contexts.MeshTls.for_instance` says: mutual TLS to an
  instance registered Connect-native, plain HTTP to one that is not (or with no
  ``mesh_tls``); its refusal (``require`` on, no certificate yet) is an
  UpstreamConnectError, nothing sent;
- one attempt, redirects not followed: any status is an answer, not an error;
- ``timeout_s`` bounds the whole exchange (connecting, the handshake, the
  request, the head and the whole body): UpstreamTimeout past it;
- the body is read whole: :class:`edge.auth.http_body.BodyTooLarge` once it
  passes ``max_body_bytes`` (at once when its Content-Length says it will);
- the transport's errors (UpstreamError and its subclasses) propagate as they are;
- the response is released in every case (the connection goes back to the pool
  only when the body was read to its end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy

from edge.auth.http_body import BodyTooLarge, read_limited
from mesh.mtls.contexts import MeshTls
from mesh.snapshot import Instance
from mesh.transport.base import (
    PeerTls,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTransport,
)


@dataclass(frozen=True, slots=True)
class InstanceAnswer:
    """An instance's whole answer: status, headers and body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class AnswerTooLarge(BodyTooLarge):
    """The answer's body passed the caller's limit: its status and headers, no body."""

    def __init__(self, status: int, headers: CIMultiDictProxy[str], max_bytes: int) -> None:
        super().__init__(f"body over {max_bytes} bytes")
        self.status = status
        self.headers = headers


async def fetch_from_instance(
    transport: UpstreamTransport,
    instance: Instance,
    mesh_tls: MeshTls | None,
    *,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeout_s: float,
    max_body_bytes: int,
) -> InstanceAnswer:
    """Send ``method target`` (path and query) with ``headers`` and ``body`` to
    ``instance``, and return its answer; see the module docstring for the contract."""
    tls = mesh_tls.for_instance(instance) if mesh_tls is not None else None
    return await fetch(
        transport,
        instance.address,
        instance.port,
        tls,
        where=instance.id,
        method=method,
        target=target,
        headers=headers,
        body=body,
        timeout_s=timeout_s,
        max_body_bytes=max_body_bytes,
    )


async def fetch(
    transport: UpstreamTransport,
    host: str,
    port: int,
    tls: PeerTls | None,
    *,
    where: str,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeout_s: float,
    max_body_bytes: int,
) -> InstanceAnswer:
    """:func:`fetch_from_instance` to ``host:port`` with ``tls`` as given (None: plain
    HTTP), named ``where`` in errors; a body past ``max_body_bytes`` raises
    :class:`AnswerTooLarge`, which still tells the answer's status and headers."""
    request = UpstreamRequest(
        method=method,
        target=target,
        headers=CIMultiDict(headers),
        body=body,
        connect_timeout=timeout_s,
        response_timeout=timeout_s,
    )
    try:
        async with asyncio.timeout(timeout_s):
            response = await transport.send(host, port, request, tls)
            try:
                content = await read_limited(
                    response.chunks(), _declared_length(response), max_body_bytes
                )
            except BodyTooLarge:
                raise AnswerTooLarge(response.status, response.headers, max_body_bytes) from None
            finally:
                response.release()
    except TimeoutError as exc:
        raise UpstreamTimeout(f"{where} gave no whole answer within {timeout_s:g}s") from exc
    return InstanceAnswer(response.status, response.headers, content)


def _declared_length(response: UpstreamResponse) -> int | None:
    declared = response.headers.get("Content-Length", "").strip()
    return int(declared) if declared.isascii() and declared.isdigit() else None
