"""Inbound, with mesh TLS: Consul's intentions decide which calling services are served.

The caller's service is the one its client certificate names (verified against
the Connect CA's roots in the handshake; the inbound listener takes no client
without one). A caller the intentions refuse gets a 403 problem naming both
services and the intention that decided, and the app never sees the request.

An allowed request reaches the app with ``X-Forwarded-Client-Cert:
By=<this service's URI>;URI=<the caller's URI>`` (Envoy's format, which
Istio's sidecars write too), so the app can tell which service calls it. The
inbound listener removes any copy a caller sent
(:data:`mesh.mtls.spiffe.CLIENT_CERT_HEADER` is among the headers it strips),
mesh TLS on or off, so the header the app sees is always the sidecar's.

A caller over plain HTTP (the inbound port takes both, see
:mod:`mesh.sniffing_site`) has no certificate, so no service the intentions
could judge. :attr:`IntentionFilter.mode` decides: ``strict`` answers it 403
``mesh-tls-required``; ``permissive``, for a migration into mesh TLS, serves
it as the sidecar did before mesh TLS, past the intentions and without
``X-Forwarded-Client-Cert`` (as Consul's permissive mutual TLS mode does).
Either way ``meshgate_mesh_tls_plaintext_requests_total{outcome}`` counts it,
so a migration can be watched until nothing arrives in plain HTTP.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.mtls.contexts import MeshTls
from mesh.mtls.intentions import IntentionTable
from mesh.mtls.spiffe import CLIENT_CERT_HEADER, certificate_identity


class IntentionFilter:
    """Serves a request only when :attr:`table` allows the calling service.

    Until the first list of intentions is in, :attr:`table` is empty and the
    configured default decides (the sidecar waits for the list before it opens
    its inbound listener, so in practice the default only decides unmatched calls).
    """

    def __init__(
        self,
        mesh_tls: MeshTls,
        default_allow: bool,
        registry: CollectorRegistry,
        mode: str = "strict",
    ) -> None:
        """``mesh_tls``: this sidecar's (its service is the destination; its roots' trust
        domain the one a caller's certificate must name; its certificate's URI what
        ``X-Forwarded-Client-Cert`` names as ``By``). ``mode``: ``strict`` or
        ``permissive`` (plain-HTTP callers refused or served); it may be set at any time."""
        self._mesh_tls = mesh_tls
        self.table = IntentionTable(mesh_tls.service, (), default_allow)
        self.mode = mode
        self._plaintext = Counter(
            "meshgate_mesh_tls_plaintext_requests",
            "Inbound requests that came over plain HTTP rather than mesh TLS: "
            "admitted (mesh_tls.mode permissive) or refused (strict).",
            ["outcome"],
            registry=registry,
        )
        self._refusals = Counter(
            "meshgate_intention_refusals",
            "Inbound requests refused because Consul's intentions deny their calling "
            "service (source: the service its certificate names, or 'unknown').",
            ["source"],
            registry=registry,
        )

    def replace(self, table: IntentionTable) -> None:
        self.table = table

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        transport = ex.request.transport
        peercert = None if transport is None else transport.get_extra_info("peercert")
        if peercert is None and (
            transport is None or transport.get_extra_info("ssl_object") is None
        ):
            return await self._plaintext_call(ex, next_handler)
        roots = self._mesh_tls.roots
        identity = None if roots is None else certificate_identity(peercert, roots.trust_domain)
        destination = self.table.destination
        if identity is None:
            self._refusals.labels("unknown").inc()
            return ex.problem(
                403,
                "Caller not identified",
                f"the client certificate names no service that may call {destination!r}",
                slug="caller-unidentified",
            )
        decision = self.table.decide(identity.service)
        if not decision.allowed:
            self._refusals.labels(identity.service).inc()
            return ex.problem(
                403,
                "Refused by intentions",
                f"{identity.service!r} may not call {destination!r}: {decision.reason}",
                slug="intention-denied",
            )
        leaf = self._mesh_tls.leaf
        own = "" if leaf is None else f"By={leaf.uri};"
        ex.upstream_headers[CLIENT_CERT_HEADER] = f"{own}URI={identity.uri}"
        return await next_handler(ex)

    async def _plaintext_call(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        if self.mode == "permissive":
            self._plaintext.labels("admitted").inc()
            return await next_handler(ex)
        self._plaintext.labels("refused").inc()
        return ex.problem(
            403,
            "Mesh TLS required",
            f"{self.table.destination!r} takes callers over mesh TLS only (mesh_tls.mode: "
            "strict); this request came over plain HTTP",
            slug="mesh-tls-required",
        )
