"""A route's ``redirect`` and ``direct_response`` blocks (the edge answers, no service)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from edge.direct.actions import REDIRECT_CODES, DirectResponse, Redirect, redirect_host
from mesh.config.types import Frozen

# An absolute path as it may stand in a URL: RFC 3986 path characters and well-formed
# percent-escapes only, so nothing configured can break the Location header.
_URL_PATH = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*\Z")
# A header value: visible characters and inner spaces (no CR, LF or other controls).
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?\Z")

MAX_BODY = 1024 * 1024
"""Largest direct-response body: every edge process keeps it in memory."""


def _url_path(value: str | None) -> str | None:
    if value is not None and not _URL_PATH.match(value):
        raise ValueError(
            "must be an absolute URL path: '/' then letters, digits, -._~!$&'()*+,;=:@/ "
            "or %XX escapes (no query, fragment or spaces)"
        )
    return value


class RedirectConfig(Frozen):
    """Answer the route's requests with a redirect to the same URL with these parts
    replaced (each null: kept from the request)."""

    code: int = 301
    """301, 302, 303, 307 or 308 (307 and 308 keep the method and body)."""
    scheme: Literal["http", "https"] | None = None
    host: str | None = None
    """A host name or address, with an optional port (``docs.example.com:8443``)."""
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str | None = None
    """Replaces the whole path."""
    prefix_rewrite: str | None = None
    """Replaces the route's prefix (``/old`` → ``/new`` makes ``/old/7`` ``/new/7``)."""
    strip_query: bool = False
    """Drop the request's query (kept by default)."""

    @field_validator("code")
    @classmethod
    def _redirect_code(cls, value: int) -> int:
        if value not in REDIRECT_CODES:
            raise ValueError(f"{value} is not a redirect: use 301, 302, 303, 307 or 308")
        return value

    @field_validator("host")
    @classmethod
    def _authority(cls, value: str | None) -> str | None:
        if value is not None:
            redirect_host(value)
        return value

    @field_validator("path", "prefix_rewrite")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return _url_path(value)

    @model_validator(mode="after")
    def _one_path(self) -> RedirectConfig:
        if self.path is not None and self.prefix_rewrite is not None:
            raise ValueError("use either path or prefix_rewrite, not both")
        return self

    def action(self) -> Redirect:
        return Redirect(
            code=self.code,
            scheme=self.scheme,
            host=None if self.host is None else redirect_host(self.host),
            port=self.port,
            path=self.path,
            prefix_rewrite=self.prefix_rewrite,
            strip_query=self.strip_query,
        )


class DirectResponseConfig(Frozen):
    """Answer the route's requests with this status and body."""

    status: int = Field(ge=200, le=599)
    body: str | None = None
    """The body, as text (sent as UTF-8)."""
    body_file: str | None = None
    """A file whose bytes are the body, read when the config is loaded (or reloaded)."""
    content_type: str = "text/plain; charset=utf-8"
    """Sent with a body."""
    _body: bytes = PrivateAttr(default=b"")

    @field_validator("content_type")
    @classmethod
    def _header_value(cls, value: str) -> str:
        if not _HEADER_VALUE.match(value):
            raise ValueError(f"{value!r} is not a valid header value")
        return value

    @model_validator(mode="after")
    def _read_body(self) -> DirectResponseConfig:
        if self.body is not None and self.body_file is not None:
            raise ValueError("use either body or body_file, not both")
        if self.body is not None:
            body = self.body.encode()
        elif self.body_file is not None:
            body = _read(self.body_file)
        else:
            body = b""
        if len(body) > MAX_BODY:
            raise ValueError(f"the body is {len(body)} bytes, more than the {MAX_BODY} allowed")
        if body and self.status in (204, 304):
            raise ValueError(f"a {self.status} answer has no body")
        self._body = body
        return self

    def action(self) -> DirectResponse:
        body = self._body
        return DirectResponse(self.status, body, self.content_type if body else None)


def _read(name: str) -> bytes:
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise ValueError(f"body_file {name}: cannot read it ({exc.strerror})") from None
