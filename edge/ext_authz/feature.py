"""The external authorization feature of the edge: with an ``ext_authz`` section, one
filter after routing (:mod:`edge.filters.ext_authz`), right after authentication and
before the rate limits; ``meshgate_ext_authz_*``; ``/ext-authz`` on the admin listener.

Always built, so that a reload may add, change or remove the section; without it the
feature contributes no filter. It always has the ingress remove the client's copies of
``X-Meshgate-Ext-Authz``, the mark of a request let through by ``failure_mode: allow``,
so a service never takes a client's word for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.auth.identity import IdentityHeaders
from edge.config import EdgeConfig
from edge.ext_authz.client import AuthzClient, HttpsClient, SharedSession, TransportClient
from edge.ext_authz.config import ExtAuthzConfig
from edge.ext_authz.metrics import ExtAuthzMetrics
from edge.ext_authz.policy import MARKER, CheckSettings
from edge.feature import BaseFeature, EdgeContext, JsonView
from edge.filters.ext_authz import CheckHealth, ExtAuthzFilter
from mesh.chain import Filter
from mesh.config.reload import Reload
from mesh.config.types import split_host_port
from mesh.identity.token import IdentitySigner


class ExtAuthzFeature(BaseFeature):
    name = "ext_authz"

    def __init__(
        self, config: EdgeConfig, ctx: EdgeContext, signer: IdentitySigner | None = None
    ) -> None:
        """``ctx.transport`` is required for a ``service`` or an ``http://`` URL: the
        checks go through the proxy's transport. ``signer``: the edge's identity token
        signer (the auth feature's, when on), for the checks of authenticated callers."""
        self._ctx = ctx
        self._signer = signer
        self._token_header = config.auth.identity.token.header
        self._metrics = ExtAuthzMetrics(ctx.registry)
        self._sessions = SharedSession()
        self._health = CheckHealth()
        # The identity headers are the auth section's, which a reload does not change.
        self._identity = IdentityHeaders(config.auth.identity.claims)
        self._config = config.ext_authz
        self._filters = self._filters_for(config)

    def _filters_for(self, config: EdgeConfig) -> list[Filter]:
        c = config.ext_authz
        if c is None:
            return []
        settings = CheckSettings.of(
            path_prefix=c.path_prefix,
            timeout=c.timeout,
            failure_mode=c.failure_mode,
            status_on_error=c.status_on_error,
            check_by_default=c.check_by_default,
            request_names=c.allowed_request_headers,
            fixed=c.check_headers,
            body_max=c.with_request_body.max_bytes if c.with_request_body is not None else None,
            upstream_names=c.allowed_upstream_headers,
            client_names=c.allowed_client_headers,
        )
        return [
            ExtAuthzFilter(
                settings,
                self._client(c),
                self._metrics,
                self._identity,
                self._health,
                body_timeout=config.listen.body_timeout,
                signer=self._signer,
                token_header=self._token_header,
            )
        ]

    def _client(self, c: ExtAuthzConfig) -> AuthzClient:
        if c.url is not None and c.url.startswith("https://"):
            return HttpsClient(c.url, self._sessions)
        transport = self._ctx.transport
        if transport is None:
            raise ValueError("external authorization needs the proxy's transport")
        if c.url is not None:
            return TransportClient(transport, address=split_host_port(c.url, 80))
        store = self._ctx.store
        return TransportClient(
            transport,
            service=c.service,
            snapshot=lambda: store.current,
            mesh_tls=self._ctx.mesh_tls,
        )

    def after_routing(self) -> list[Filter]:
        return self._filters

    def strip_headers(self) -> set[str]:
        return {MARKER.lower()}

    def prepare_reload(self, config: EdgeConfig) -> Reload:
        """The section (added, changed or removed) from the next request; checks in
        flight finish as they started. The routes' own ``ext_authz`` come with the
        routes (the gateway's key)."""
        filters = self._filters_for(config)
        section = config.ext_authz

        def commit() -> None:
            self._filters = filters
            self._config = section

        return Reload(("ext_authz",), commit)

    def admin_views(self) -> Mapping[str, JsonView]:
        return {"/ext-authz": self.view}

    def view(self) -> dict[str, Any]:
        """The ``/ext-authz`` admin view: the section as it runs, and whether checks fail."""
        c = self._config
        return {
            "configured": c is not None,
            "destination": None if c is None else c.describe(),
            "settings": None if c is None else c.model_dump(mode="json", exclude={"check_headers"}),
            "check_headers": None if c is None else sorted(c.check_headers),
            "failing": self._health.failing,
            "last_error": self._health.last_error,
        }

    async def stop(self) -> None:
        await self._sessions.close()
