"""The mesh TLS in use now: this service's contexts, and what each upstream must present.

:class:`MeshTls` is fed by :mod:`discovery.connect_ca` (this service's
certificate and the CA's roots, each time Consul hands out new ones) and read
on the request path:

- :attr:`MeshTls.server` is a sidecar's inbound listener context: clients must
  present a certificate from the roots; each new handshake gets the newest
  certificate and roots;
- :meth:`MeshTls.for_instance` is what a connection to one instance must be:
  TLS with this service's certificate and the roots, the peer naming the
  instance's service; or plain, for an instance not registered as
  Connect-native (or an error, with ``require``).

A renewed certificate or rotated roots build both contexts whole before either
is used; connections already open keep theirs (they were verified), new ones
get the new.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from mesh.mtls.material import Leaf, Roots, client_context, server_context
from mesh.mtls.spiffe import certificate_identity
from mesh.server_tls import SwappableServerContext
from mesh.snapshot import Instance
from mesh.transport.base import UpstreamConnectError

log = logging.getLogger(__name__)


class UpstreamTls:
    """TLS to instances of one service: the context to connect with, and the check of
    the certificate the instance presents. ``key`` tells pooled connections apart:
    one verified for a service is never lent to a request meant for another."""

    __slots__ = ("context", "key", "service", "trust_domain")

    def __init__(self, context: ssl.SSLContext, service: str, trust_domain: str) -> None:
        self.context = context
        self.service = service
        self.trust_domain = trust_domain
        self.key = f"mtls:{service}"

    def refusal(self, peercert: Mapping[str, Any] | None) -> str | None:
        """Why a verified peer certificate is not ``service``'s, or None when it is."""
        identity = certificate_identity(peercert, self.trust_domain)
        if identity is None:
            return f"its certificate names no service of trust domain {self.trust_domain}"
        if identity.service != self.service:
            return f"its certificate is {identity.service!r}'s, not {self.service!r}'s"
        return None


class MeshTls:
    """This process's Connect identity (``service``) and the contexts made from it.

    Until the first certificate and roots are in, :attr:`ready` is unset, :attr:`server`
    must not serve, and :meth:`for_instance` refuses mesh-TLS instances.
    """

    def __init__(
        self,
        service: str,
        *,
        require: bool,
        on_replace: Callable[[str], None] = lambda _part: None,
    ) -> None:
        """``on_replace(part)`` is told of each certificate (``"certificate"``) or roots
        (``"roots"``) that replaces one in use."""
        self.service = service
        self.require = require
        self._on_replace = on_replace
        self.ready = asyncio.Event()
        self.leaf: Leaf | None = None
        self.roots: Roots | None = None
        # The listener's own context never serves a handshake (a listener opens only once
        # ready): every ClientHello is moved to the context built last. What OpenSSL does
        # not move (the verify mode) is already what the built ones have.
        self.server = SwappableServerContext(_placeholder_server_context())
        self._client: ssl.SSLContext | None = None
        self._upstreams: dict[str, UpstreamTls] = {}
        self.updates = {"certificate": 0, "roots": 0}
        """How many times each was replaced after the first (Consul renewed or rotated)."""

    def update(self, leaf: Leaf | None = None, roots: Roots | None = None) -> None:
        """Take a new certificate and/or roots. Both contexts are built before either is
        used; raises MaterialError (nothing changed) when they cannot be."""
        leaf = leaf or self.leaf
        roots = roots or self.roots
        if leaf == self.leaf and roots == self.roots and self.ready.is_set():
            return  # a blocking query's wait ran out: nothing new
        if leaf is None or roots is None:
            self.leaf, self.roots = leaf, roots
            return
        fresh_server = server_context(leaf, roots)
        fresh_client = client_context(leaf, roots)
        if self.leaf is not None and self.roots is not None and self.ready.is_set():
            if leaf.cert_pem != self.leaf.cert_pem:
                self._replaced("certificate")
            if roots != self.roots:
                self._replaced("roots")
        self.leaf, self.roots = leaf, roots
        self._client = fresh_client
        self._upstreams = {}
        self.server.swap(fresh_server)
        if not self.ready.is_set():
            log.info("mesh TLS ready: %s, trust domain %s", leaf.uri, roots.trust_domain)
        self.ready.set()

    def _replaced(self, part: str) -> None:
        self.updates[part] += 1
        self._on_replace(part)
        log.info("mesh TLS: a new %s from Consul is in use for new connections", part)

    def for_instance(self, instance: Instance) -> UpstreamTls | None:
        """How to connect to ``instance``: None for plain HTTP (an instance not in mesh
        TLS, allowed without ``require``). Raises UpstreamConnectError (nothing sent;
        the proxy moves on to another instance) when it cannot be reached as required."""
        if not instance.mesh_tls:
            if self.require:
                raise UpstreamConnectError(
                    f"{instance.id} is not registered for mesh TLS (Connect native), "
                    "and mesh_tls.require is on"
                )
            return None
        upstream = self._upstreams.get(instance.service)
        if upstream is None:
            if self._client is None or self.roots is None:
                raise UpstreamConnectError(
                    f"mesh TLS to {instance.id} is not possible yet: no certificate from Consul"
                )
            upstream = UpstreamTls(self._client, instance.service, self.roots.trust_domain)
            self._upstreams[instance.service] = upstream
        return upstream

    def view(self) -> dict[str, object]:
        """The admin listener's ``/mesh-tls``: identity, certificate and roots (never the key)."""
        leaf, roots = self.leaf, self.roots
        return {
            "service": self.service,
            "ready": self.ready.is_set(),
            "require": self.require,
            "certificate": None
            if leaf is None
            else {"uri": leaf.uri, "serial": leaf.serial, "valid_before": leaf.valid_before},
            "roots": None
            if roots is None
            else {
                "trust_domain": roots.trust_domain,
                "active_id": roots.active_id,
                "count": len(roots.pems),
            },
            "updates": dict(self.updates),
        }


def _placeholder_server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    return context
