"""``headers``: header changes on the way to the service and back to the client, for the
whole edge and per route."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field, field_validator, model_validator

from mesh.config.types import Frozen, HeaderName
from mesh.http.headers import HOP_BY_HOP

MANAGED_REQUEST = HOP_BY_HOP | {
    "host",
    "content-length",
    "content-encoding",
    "expect",
    "x-request-id",
    "x-mesh-deadline-ms",
    "traceparent",
    "tracestate",
    "baggage",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
}
"""Request headers meshgate writes itself (framing, routing, the request id, deadline,
trace context and forwarding chain): not configurable."""
MANAGED_RESPONSE = HOP_BY_HOP | {
    "content-length",
    "content-encoding",
    "x-request-id",
    "traceresponse",
}
"""Response headers meshgate writes itself: not configurable."""


def _value(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{value!r}: a header value cannot hold CR, LF or NUL")
    return value


class HeaderChanges(Frozen):
    """Headers replaced (``set``: any of the same name is replaced) and removed."""

    set: dict[HeaderName, str] = Field(default_factory=dict)
    remove: tuple[HeaderName, ...] = ()

    @field_validator("set")
    @classmethod
    def _values(cls, value: dict[str, str]) -> dict[str, str]:
        for v in value.values():
            _value(v)
        return value

    @model_validator(mode="after")
    def _not_both(self) -> HeaderChanges:
        both = {n.lower() for n in self.set} & {n.lower() for n in self.remove}
        if both:
            raise ValueError(f"{sorted(both)[0]} is both set and removed (set replaces it)")
        return self

    def names(self) -> Iterable[str]:
        return (*self.set, *self.remove)


class HeadersConfig(Frozen):
    request: HeaderChanges = HeaderChanges()
    """Changes to the request sent to the service."""
    response: HeaderChanges = HeaderChanges()
    """Changes to the answer sent to the client."""

    @model_validator(mode="after")
    def _not_managed(self) -> HeadersConfig:
        for side, changes, managed in (
            ("request", self.request, MANAGED_REQUEST),
            ("response", self.response, MANAGED_RESPONSE),
        ):
            for name in changes.names():
                if name.lower() in managed:
                    raise ValueError(f"{side}: {name} is written by meshgate itself")
        if any(name.lower() == "server" for name in self.response.remove):
            raise ValueError(
                "response.remove: Server cannot be removed (the HTTP server writes its "
                "own); set it instead, e.g. set: {Server: gateway}"
            )
        return self
