"""The URL of an auth service endpoint, found in the catalog snapshot on every call.

For ``jwks.service`` / ``introspection.service``: each call picks the next
healthy instance (round robin) of the named service, so the edge follows the
auth service as it moves, like any other traffic.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from mesh.snapshot import Snapshot


class NoHealthyInstance(Exception):
    """The service has no healthy instance in the current snapshot."""


class ServiceUrl:
    """An async callable returning ``http://<healthy instance><path>``.

    Raises NoHealthyInstance when there is none (a fetch then counts as failed
    and the last good answers keep serving).
    """

    def __init__(self, snapshot: Callable[[], Snapshot], service: str, path: str) -> None:
        self._snapshot = snapshot
        self.service = service
        self._path = path
        self._turn = itertools.count()

    async def __call__(self) -> str:
        entry = self._snapshot().service(self.service)
        instances = entry.healthy if entry is not None else ()
        if not instances:
            raise NoHealthyInstance(f"no healthy instance of {self.service!r}")
        instance = instances[next(self._turn) % len(instances)]
        host = instance.address
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 literal
        return f"http://{host}:{instance.port}{self._path}"

    def describe(self) -> str:
        return f"service {self.service} at {self._path}"
