"""Header changes: what the config accepts, and what the rules do to an exchange."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from edge.headers.config import HeadersConfig
from edge.headers.rules import HeaderRules
from tests.edge.exchanges import exchange
from tests.edge.refused_config import assert_refused


def rules(**config: object) -> HeaderRules:
    return HeaderRules(HeadersConfig.model_validate(config))


def test_request_changes_replace_and_remove_every_copy() -> None:
    ex = exchange([("X-Env", "dev"), ("x-env", "test"), ("X-Debug", "1"), ("Accept", "*/*")])
    rules(request={"set": {"X-Env": "prod"}, "remove": ["x-debug"]}).request(ex)
    assert sorted(ex.upstream_headers.items()) == [("Accept", "*/*"), ("X-Env", "prod")]


def test_response_changes_reach_the_answer_and_a_routes_set_wins() -> None:
    ex = exchange([])
    edge = rules(
        response={"set": {"Strict-Transport-Security": "max-age=60", "X-Frame-Options": "DENY"}}
    )
    route = rules(response={"set": {"x-frame-options": "SAMEORIGIN"}, "remove": ["X-Powered-By"]})
    edge.response(ex)
    route.response(ex)
    upstream = web.Response(
        headers={"X-Powered-By": "PHP", "X-Frame-Options": "ALLOW", "ETag": '"1"'}
    )
    ex.apply_response_headers(upstream)
    headers = upstream.headers
    assert headers["Strict-Transport-Security"] == "max-age=60"
    assert headers.getall("X-Frame-Options") == ["SAMEORIGIN"]
    assert "X-Powered-By" not in headers
    assert headers["ETag"] == '"1"'
    assert ex.response_drops == ()  # applied once


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ("headers: {request: {set: {Host: x}}}", "headers", "Host is written by meshgate"),
        ("headers: {request: {remove: [traceparent]}}", "headers", "traceparent is written"),
        ("headers: {response: {set: {Content-Length: '1'}}}", "headers", "Content-Length is"),
        ("headers: {response: {remove: [Server]}}", "headers", "Server cannot be removed"),
        ("headers: {request: {set: {'X A': b}}}", "headers.request.set.X A.[key]", "not a valid"),
        ('headers: {request: {set: {X-A: "a\\r\\nB: c"}}}', "headers.request.set", "CR, LF"),
        ("headers: {request: {set: {X-A: a}, remove: [x-a]}}", "headers.request", "both set"),
        ("headers: {request: {set: {X-User-Id: x}}}", "", "X-User-Id is an identity header"),
        (
            "routes: [{prefix: /a, service: a, headers: {request: {remove: [X-Mesh-Identity]}}}]",
            "",
            "routes[0].headers.request: X-Mesh-Identity is an identity header",
        ),
    ],
)
def test_bad_changes_are_refused(tmp_path: Path, section: str, key: str, problem: str) -> None:
    assert_refused(tmp_path, section, key, problem)
