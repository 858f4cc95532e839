"""Upstream transports behind one small interface (:mod:`mesh.transport.base`)."""

from __future__ import annotations

from typing import Literal

from mesh.transport.base import UpstreamTransport

TransportKind = Literal["fast", "aiohttp"]


def make_transport(kind: TransportKind, pool_size_per_host: int) -> UpstreamTransport:
    """``fast``: keep-alive pool on asyncio protocols and httptools (the default);
    ``aiohttp``: aiohttp's ClientSession, slower, kept as a reference implementation."""
    if kind == "aiohttp":
        from mesh.transport.aiohttp_client import AiohttpTransport

        return AiohttpTransport(pool_size_per_host)
    from mesh.transport.fast import FastTransport

    return FastTransport(pool_size_per_host)
