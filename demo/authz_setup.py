"""The demo's external authorization: the ``authz`` service (``demo.service --name authz``,
deciding by :mod:`demo.authz_policy`) asked by the edge about one route's requests.

``/api/admin`` (the users app's ``/users/admin/...``) is the route checked: the edge
verifies the caller's token, then asks ``authz`` (found in Consul, over mutual TLS like
every hop), which lets ``admin`` callers in and refuses the others with 403 and an
``X-Authz-Reason``. Every other route says nothing, and ``check_by_default`` is off, so
they are not checked (the demo's other requests pay no round trip).
"""

from __future__ import annotations

from typing import Any

AUTHZ_SERVICE = "authz"
ADMIN_ROUTE: dict[str, Any] = {
    "prefix": "/api/admin",
    "service": "users",
    "prefix_rewrite": "/users/admin",
    "ext_authz": {"context": {"resource": "admin"}},
}
"""The users app again, behind the authorization service's decision."""


def edge_ext_authz() -> dict[str, Any]:
    """The edge's ``ext_authz`` section."""
    return {
        "service": AUTHZ_SERVICE,
        "path_prefix": "/authz/check",
        "check_by_default": False,
        # Accept: the policy sends an anonymous browser to sign in, others a challenge.
        "allowed_request_headers": ["Authorization", "Cookie", "Accept"],
        "allowed_upstream_headers": ["X-Authz-Subject", "X-Authz-Rule"],
        "allowed_client_headers": ["WWW-Authenticate", "Location", "Set-Cookie", "X-Authz-Reason"],
    }


def describe(base: str, auth_key: str) -> list[str]:
    """Lines for the demo's banner: the checked route, and how to see it decide."""
    return [
        "External authorization (the authz service decides on /api/admin):",
        f"  ADMIN=$(meshgate token --sub bob --role admin --key {auth_key})",
        f'  curl -H "Authorization: Bearer $ADMIN" {base}/api/admin/echo   # 200, X-Authz-Subject',
        f'  curl -si -H "Authorization: Bearer $TOKEN" {base}/api/admin/echo | head -5'
        "   # alice: 403, X-Authz-Reason",
    ]
