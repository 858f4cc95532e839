"""The ``hash_policy`` key, of an edge route or of a service a sidecar's app calls
(``resilience``): its schema (see :mod:`mesh.hash_policy`)."""

from __future__ import annotations

from pydantic import model_validator

from mesh.config.types import Frozen, HeaderName
from mesh.hash_policy import HashPolicy, HashSource


class HashSourceConfig(Frozen):
    """One source of a request's hash key: exactly one of ``header``, ``cookie``,
    ``query`` and ``source_ip: true``."""

    header: HeaderName | None = None
    """A request header, in any case."""
    cookie: str | None = None
    """A cookie name (case-sensitive)."""
    query: str | None = None
    """A query parameter name (case-sensitive)."""
    source_ip: bool | None = None
    """true: the client's address."""

    @model_validator(mode="after")
    def _exactly_one(self) -> HashSourceConfig:
        given = [k for k in ("header", "cookie", "query", "source_ip") if getattr(self, k)]
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            raise ValueError(
                f"give exactly one of header, cookie, query and source_ip: true (found {found})"
            )
        return self

    def source(self) -> HashSource:
        if self.header:
            return HashSource("header", self.header)
        if self.cookie:
            return HashSource("cookie", self.cookie)
        if self.query:
            return HashSource("query", self.query)
        return HashSource("source_ip")


def hash_policy(sources: tuple[HashSourceConfig, ...] | None) -> HashPolicy | None:
    """The policy a ``hash_policy`` list gives (None: none, or an empty list)."""
    return HashPolicy(tuple(s.source() for s in sources)) if sources else None
