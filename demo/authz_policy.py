"""The demo's authorization policy: what its external authorization service answers the
edge's checks (``python -m demo.service --name authz`` serves it at ``/authz/check``).

The edge asks about each request of the routes it covers, after verifying the caller:
the check carries the caller's identity headers (``X-User-Id``, ``X-User-Roles``) and
the request's method and path (behind the check's own path prefix). The policy, in
order (pure, so that it is tested without a server):

1. **No caller** (no ``X-User-Id``: the route lets anonymous callers through): a
   browser (``Accept`` with ``text/html``) is sent to sign in, ``302`` to
   ``/auth/login?rd=<the request's URI>``; anything else gets ``401`` with a
   ``WWW-Authenticate`` challenge and a JSON problem.
2. **A segment ``admin``** anywhere in the path needs the role ``admin``: ``403``
   with ``X-Authz-Reason`` and a JSON problem saying why.
3. **Writes** (POST, PUT, PATCH, DELETE) need the role ``user`` or ``admin``
   (a machine client with the role ``service`` may only read): ``403``.
4. Anything else is allowed: ``200`` with ``X-Authz-Subject`` (who), ``X-Authz-Rule``
   (which rule allowed it) and ``X-Authz-Debug`` (which the edge should not pass on:
   it is not among its ``allowed_upstream_headers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WRITERS = frozenset({"user", "admin"})
PROBLEM_TYPE = "https://meshgate.dev/demo/authz/"


@dataclass(frozen=True)
class Decision:
    """The answer to one check: status, headers, and a JSON body (None: none)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] | None = field(default=None)


def _problem(status: int, slug: str, title: str, detail: str) -> dict[str, Any]:
    return {"type": PROBLEM_TYPE + slug, "title": title, "status": status, "detail": detail}


def decide(method: str, path: str, headers: Mapping[str, str]) -> Decision:
    """The decision about a request of ``method`` on ``path`` (the client's, without the
    check's prefix) whose check carried ``headers`` (case-insensitive mapping)."""
    subject = headers.get("X-User-Id")
    roles = {r.strip() for r in headers.get("X-User-Roles", "").split(",") if r.strip()}
    if not subject:
        if "text/html" in headers.get("Accept", ""):
            uri = headers.get("X-Forwarded-Uri", path)
            return Decision(302, (("Location", f"/auth/login?rd={quote(uri, safe='')}"),))
        return Decision(
            401,
            (("WWW-Authenticate", 'Bearer realm="meshgate-demo"'),),
            _problem(401, "sign-in", "Sign in first", "this request needs a signed-in caller"),
        )
    if "admin" in path.split("/") and "admin" not in roles:
        reason = "role admin required"
        return Decision(
            403,
            (("X-Authz-Reason", reason),),
            _problem(403, "forbidden", "Forbidden", f"{subject}: {reason}"),
        )
    if method in WRITES and not roles & WRITERS:
        reason = "role user or admin required to write"
        return Decision(
            403,
            (("X-Authz-Reason", reason),),
            _problem(403, "forbidden", "Forbidden", f"{subject}: {reason}"),
        )
    rule = "admin" if "admin" in path.split("/") else ("write" if method in WRITES else "read")
    return Decision(
        200,
        (
            ("X-Authz-Subject", subject),
            ("X-Authz-Rule", rule),
            ("X-Authz-Debug", "decided by the demo policy"),
        ),
    )
