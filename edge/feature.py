"""The extension point of the edge: a feature contributes filters, admin views, a lifecycle.

Authentication, rate limiting and tracing are features. Each lives in its own
package, is built from the config by :func:`edge.features.build_features`, and
plugs into the pipeline at one of three places:

* ``before_routing``: runs for every request, matched or not (e.g. stripping
  spoofed identity headers, tracing, access logs);
* ``after_routing``: runs once the route is known (``ex.attrs["route"]`` is the
  matched :class:`edge.routes.Route`), in feature order (auth before limits);
* ``before_proxy``: runs last, only for requests every other filter let through
  (e.g. signing the identity token, which a refused request must not pay for).

The gateway asks for the filters again each time it builds the pipeline (on
every catalog change and reload), so a feature that applies a reloaded
configuration (``prepare_reload``, see :mod:`mesh.config.reload`) swaps its filters in
its commit and the next pipeline has them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry

from discovery.settings import ConsulSettings
from mesh.admin import AdminHandler
from mesh.admin_workers import AdminWorkers
from mesh.chain import Filter
from mesh.config.reload import Reload
from mesh.mtls.contexts import MeshTls
from mesh.snapshot import SnapshotStore
from mesh.transport.base import UpstreamTransport

if TYPE_CHECKING:
    from edge.config import EdgeConfig

JsonView = Callable[[], Mapping[str, Any]]


@dataclass
class EdgeContext:
    """What the edge shares with its features."""

    store: SnapshotStore
    registry: CollectorRegistry
    consul: ConsulSettings
    config_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    transport: UpstreamTransport | None = None
    """The proxy's upstream transport, for features that call services themselves."""
    mesh_tls: MeshTls | None = None
    """The edge's mesh TLS when on: how to reach an instance (see
    :meth:`mesh.mtls.contexts.MeshTls.for_instance`)."""
    workers: AdminWorkers = field(default_factory=lambda: AdminWorkers(None))
    """This process among the edge's workers: an admin endpoint acting on state each
    worker holds wraps itself in :meth:`AdminWorkers.across` to reach them all."""


class EdgeFeature(Protocol):
    name: str

    def before_routing(self) -> list[Filter]: ...

    def after_routing(self) -> list[Filter]: ...

    def before_proxy(self) -> list[Filter]: ...

    def admin_views(self) -> Mapping[str, JsonView]: ...

    def admin_endpoints(self) -> Mapping[tuple[str, str], AdminHandler]:
        """Handlers of the admin listener that take the request: by (method, path)."""
        ...

    def open_admin_paths(self) -> set[str]:
        """Paths of this feature's admin views served without the admin token
        (:mod:`mesh.admin_auth`): only what is public by nature, e.g. public keys."""
        ...

    def strip_headers(self) -> set[str]:
        """Lower-case header names the ingress removes from every request."""
        ...

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """This feature's part of a configuration read again (see :mod:`mesh.config.reload`)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BaseFeature:
    """Defaults for every hook, so a feature only overrides what it uses."""

    name = "feature"

    def before_routing(self) -> list[Filter]:
        return []

    def after_routing(self) -> list[Filter]:
        return []

    def before_proxy(self) -> list[Filter]:
        return []

    def admin_views(self) -> Mapping[str, JsonView]:
        return {}

    def admin_endpoints(self) -> Mapping[tuple[str, str], AdminHandler]:
        return {}

    def open_admin_paths(self) -> set[str]:
        return set()

    def strip_headers(self) -> set[str]:
        return set()

    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """Nothing applied live: a change to this feature's section waits for a restart."""
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class ConfiguredFilters(BaseFeature):
    """A feature whose filters are derived from the config alone: built at start, and
    built again whole by each reload (its :attr:`reload_keys` applied live).

    Subclasses say how in :meth:`filters_for`, which may return no filter at all:
    such a feature is built whether or not its settings are present, so that a
    reload can add them."""

    reload_keys: tuple[str, ...] = ()

    def __init__(self, config: EdgeConfig) -> None:
        self._filters = self.filters_for(config)

    def filters_for(self, config: EdgeConfig) -> tuple[list[Filter], list[Filter]]:
        """The filters before routing and after it, for ``config``."""
        raise NotImplementedError

    def before_routing(self) -> list[Filter]:
        return self._filters[0]

    def after_routing(self) -> list[Filter]:
        return self._filters[1]

    def prepare_reload(self, config: EdgeConfig) -> Reload:
        filters = self.filters_for(config)

        def commit() -> None:
            self._filters = filters

        return Reload(self.reload_keys, commit)
