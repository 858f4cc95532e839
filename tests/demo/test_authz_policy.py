"""The demo's authorization policy (what its ext_authz service answers), and the check
endpoint of the ``authz`` demo service that serves it."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from demo.authz_policy import decide
from demo.service import create_app


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in values.items()})


def test_no_caller_gets_a_challenge_or_for_a_browser_a_sign_in_redirect() -> None:
    plain = decide("GET", "/api/users/echo", headers())
    assert plain.status == 401
    assert dict(plain.headers)["WWW-Authenticate"] == 'Bearer realm="meshgate-demo"'
    assert plain.body is not None and plain.body["title"] == "Sign in first"
    browser = decide(
        "GET", "/api/users/x", headers(Accept="text/html,*/*", X_Forwarded_Uri="/api/users/x?a=1")
    )
    assert (browser.status, browser.body) == (302, None)
    assert dict(browser.headers)["Location"] == "/auth/login?rd=%2Fapi%2Fusers%2Fx%3Fa%3D1"


def test_admin_paths_need_the_admin_role() -> None:
    alice = headers(X_User_Id="alice", X_User_Roles="user")
    denied = decide("GET", "/api/admin/users", alice)
    assert denied.status == 403
    assert dict(denied.headers)["X-Authz-Reason"] == "role admin required"
    assert denied.body is not None and denied.body["detail"] == "alice: role admin required"
    # A segment, not a substring.
    assert decide("GET", "/api/administrators", alice).status == 200
    bob = headers(X_User_Id="bob", X_User_Roles="admin")
    allowed = decide("GET", "/api/admin/users", bob)
    assert allowed.status == 200
    assert dict(allowed.headers)["X-Authz-Rule"] == "admin"


def test_writes_need_a_user_or_admin() -> None:
    reporting = headers(X_User_Id="reporting", X_User_Roles="service")
    assert decide("GET", "/api/orders/7", reporting).status == 200
    assert decide("POST", "/api/orders", reporting).status == 403
    alice = headers(X_User_Id="alice", X_User_Roles="user")
    allowed = decide("POST", "/api/orders", alice)
    assert allowed.status == 200
    assert dict(allowed.headers) == {
        "X-Authz-Subject": "alice",
        "X-Authz-Rule": "write",
        "X-Authz-Debug": "decided by the demo policy",
    }


async def test_the_authz_service_answers_checks_and_records_them() -> None:
    app = create_app("authz", "authz-1")
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(
            "/authz/check/api/admin/x", headers={"X-User-Id": "alice", "X-User-Roles": "user"}
        )
        assert resp.status == 403
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert (await resp.json())["detail"] == "alice: role admin required"
        resp = await client.post("/authz/check/api/users/echo?x=1", data=b"{}")
        assert resp.status == 401
        resp = await client.get(
            "/authz/check/api/users/echo", headers={"X-User-Id": "bob", "X-User-Roles": "admin"}
        )
        assert resp.status == 200 and resp.headers["X-Authz-Subject"] == "bob"
        received = await (await client.get("/admin/received")).json()
        assert [(r["method"], r["path"], r["body_bytes"]) for r in received] == [
            ("GET", "/authz/check/api/admin/x", 0),
            ("POST", "/authz/check/api/users/echo?x=1", 2),
            ("GET", "/authz/check/api/users/echo", 0),
        ]
        stats = await (await client.get("/admin/stats")).json()
        assert stats["total"] == 3  # counted as any /authz/... request (faults apply too)
