"""JSON problem replies (RFC 9457), the one shape of every error meshgate answers itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://meshgate.dev/problems/"


def problem_body(
    status: int,
    title: str,
    detail: str,
    request_id: str | None,
    slug: str | None = None,
    extra: Mapping[str, Any] | None = None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """The body's fields; ``trace_id`` (32 hex digits, or null) finds the request in Jaeger."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
        "trace_id": trace_id,
    }
    if extra:
        body.update(extra)
    return body


def problem_response(
    status: int,
    title: str,
    detail: str,
    request_id: str | None,
    *,
    slug: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    trace_id: str | None = None,
) -> web.Response:
    """A complete response with a problem body; ``headers`` are added as given."""
    body = problem_body(status, title, detail, request_id, slug, extra, trace_id)
    response = web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=CONTENT_TYPE,
        headers=headers,
    )
    return response
