"""``ext_authz``: the edge-wide external authorization section, and a route's ``ext_authz``.

Which header names each list may hold is decided here, from what meshgate writes
itself (:mod:`edge.ext_authz.policy` holds the sets): a name the edge writes on the
check, on the request it sends on or on its answers cannot be configured. The
identity headers, which depend on ``auth.identity``, are checked by the edge's config
as a whole (:meth:`edge.config.EdgeConfig`).
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from edge.ext_authz.policy import (
    CONTEXT_PREFIX,
    NOT_FROM_CLIENT,
    NOT_TO_CLIENT,
    NOT_UPSTREAM,
    RouteCheck,
)
from mesh.config.types import ByteSize, Frozen, HeaderName, PositiveDuration

FailureMode = Literal["deny", "allow"]

_CONTEXT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")


def _printable(value: str, what: str) -> str:
    if not value.isprintable():
        raise ValueError(f"{what} {value!r}: a header value must be printable (no CR, LF, NUL)")
    return value


def _texts(value: Any) -> Any:
    """A mapping's numbers as text (``{version: 2}``); a YAML boolean is refused, as
    ``yes`` would become ``True``."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            raise ValueError(f'{key}: expected text, got {item!r}: quote it, e.g. "{item}"')
        out[key] = str(item) if isinstance(item, int | float) else item
    return out


def _refuse_names(names: Any, refused: frozenset[str], why: str) -> None:
    for name in names:
        lowered = name.lower()
        if lowered in refused or lowered.startswith(CONTEXT_PREFIX.lower()):
            raise ValueError(f"{name} {why}")


class RequestBodyConfig(Frozen):
    """``with_request_body``: the client's request body goes to the check too."""

    max_bytes: ByteSize = 8 * 1024
    """Largest body sent to the check; a request with a longer one gets 413 (Envoy's
    ``max_request_bytes`` without ``allow_partial_message``)."""


class ExtAuthzConfig(Frozen):
    """The authorization service asked about every request of the routes it covers
    (see :mod:`edge.ext_authz`)."""

    url: str | None = None
    """``http://host:port`` or ``https://host:port`` (no path: see ``path_prefix``)."""
    service: str | None = None
    """Or the service's name in the catalog: a healthy instance per check, round robin
    (mutual TLS to Connect-native instances with the edge's ``mesh_tls``)."""
    path_prefix: str = ""
    """Put before the request's path on the check: ``/check`` asks ``GET /check/api/x``
    for ``GET /api/x``."""
    timeout: PositiveDuration = 1.0
    """Longest a check may take, connecting and the whole answer; past it the check
    failed (``failure_mode``)."""
    failure_mode: FailureMode = "deny"
    """When the service cannot answer (no connection, a timeout, a 5xx): ``deny`` refuses
    the request with ``status_on_error``; ``allow`` lets it through, marked (Envoy's
    ``failure_mode_allow``)."""
    status_on_error: int = Field(default=503, ge=400, le=599)
    """The status of a request refused because the check failed (Envoy's default is 403;
    see the README for why meshgate's is 503)."""
    check_by_default: bool = True
    """true: every route is checked unless it says ``ext_authz: false``; false: only the
    routes that say ``ext_authz: true`` (or give a block)."""
    allowed_request_headers: tuple[HeaderName, ...] = ("Authorization", "Cookie")
    """The client's headers sent to the check (besides those the edge always sends)."""
    check_headers: dict[HeaderName, str] = Field(default_factory=dict)
    """Fixed headers added to every check, e.g. a key the service knows the edge by."""
    with_request_body: RequestBodyConfig | None = None
    """Send the request body too, up to ``max_bytes``; null: never."""
    allowed_upstream_headers: tuple[HeaderName, ...] = ()
    """Headers of an allowing answer set on the request sent to the service; the client's
    own copies of these names are removed from every request."""
    allowed_client_headers: tuple[HeaderName, ...] = (
        "WWW-Authenticate",
        "Location",
        "Set-Cookie",
    )
    """Headers of a denying answer passed to the client."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r}: expected http://host[:port] or https://host[:port]")
        if parts.username is not None or parts.password is not None:
            raise ValueError("no user or password in the URL: use check_headers")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("no path or query in the URL: put the path in path_prefix")
        if port == 0:
            raise ValueError(f"{value!r}: port 0")
        return value

    @field_validator("service")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.isprintable() or "/" in value):
            raise ValueError(f"{value!r} is not a service name")
        return value

    @field_validator("path_prefix")
    @classmethod
    def _path_prefix(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("must start with '/' (or be empty)")
        if any(c in value for c in "?#") or not value.isprintable() or " " in value:
            raise ValueError("a path only: no query, fragment, space or control character")
        # "/check/" and "/check" put the same path before the request's.
        return value.rstrip("/")

    @field_validator("allowed_request_headers")
    @classmethod
    def _request_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _refuse_names(value, NOT_FROM_CLIENT, "is written by the edge itself on the check")
        return value

    @field_validator("check_headers", mode="before")
    @classmethod
    def _check_header_texts(cls, value: Any) -> Any:
        return _texts(value)

    @field_validator("check_headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        _refuse_names(value, NOT_FROM_CLIENT, "is written by the edge itself on the check")
        for name, text in value.items():
            _printable(text, name)
        return value

    @field_validator("allowed_upstream_headers")
    @classmethod
    def _upstream_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _refuse_names(value, NOT_UPSTREAM, "is written by meshgate itself on the request sent on")
        return value

    @field_validator("allowed_client_headers")
    @classmethod
    def _client_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _refuse_names(value, NOT_TO_CLIENT, "is written by meshgate itself on its answer")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> ExtAuthzConfig:
        if (self.url is None) == (self.service is None):
            found = "both" if self.url is not None else "neither"
            raise ValueError(
                f"set either url or service (where the authorization service is), found {found}"
            )
        return self

    def describe(self) -> str:
        """Where the checks go, in words."""
        where = self.url if self.url is not None else f"service {self.service}"
        return f"{where}, path prefix {self.path_prefix or '(none)'}"


class RouteExtAuthzConfig(Frozen):
    """A route's ``ext_authz``: ``false`` (never checked), ``true`` (checked, needed when
    ``ext_authz.check_by_default`` is false), or a block (Envoy's ExtAuthzPerRoute)."""

    disabled: bool = False
    """true: this route's requests are never checked."""
    context: dict[str, str] = Field(default_factory=dict)
    """Sent with each of this route's checks, one header per key: ``{resource: orders}``
    adds ``X-Ext-Authz-Context-resource: orders`` (Envoy's context extensions)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"disabled": not value}
        return value

    @field_validator("context", mode="before")
    @classmethod
    def _context_texts(cls, value: Any) -> Any:
        return _texts(value)

    @field_validator("context")
    @classmethod
    def _context(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not _CONTEXT_KEY.match(key):
                raise ValueError(f"{key!r}: a key is letters, digits and '-' (it names a header)")
            _printable(text, key)
        lowered = [key.lower() for key in value]
        if len(set(lowered)) != len(lowered):
            raise ValueError("two keys differ only in case (header names do not)")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> RouteExtAuthzConfig:
        if self.disabled and self.context:
            raise ValueError("context makes no sense with disabled: true")
        return self

    def check(self) -> RouteCheck:
        return RouteCheck(
            self.disabled,
            tuple((f"{CONTEXT_PREFIX}{key}", text) for key, text in self.context.items()),
        )
