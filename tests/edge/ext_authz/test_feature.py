"""The external authorization feature: no filter without the section, one after routing
with it, in the pipeline after authentication and before the rate limits; reloads add,
change and remove it; the ingress strips the failed-open mark; the admin view."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from discovery.settings import ConsulSettings
from edge.config import EdgeConfig
from edge.ext_authz.feature import ExtAuthzFeature
from edge.feature import EdgeContext
from edge.features import build_features
from edge.filters.authenticate import AuthenticateFilter
from edge.filters.ext_authz import ExtAuthzFilter
from edge.filters.rate_limit import RateLimitFilter
from mesh.snapshot import SnapshotStore
from mesh.transport.fast import FastTransport

SECTION = {"service": "authz", "path_prefix": "/check", "check_headers": {"X-Key": "s3cret"}}


def config(section: dict[str, Any] | None = None, **more: Any) -> EdgeConfig:
    tree: dict[str, Any] = {"routes": [{"prefix": "/api", "service": "api"}], **more}
    if section is not None:
        tree["ext_authz"] = section
    return EdgeConfig.model_validate(tree)


def context() -> EdgeContext:
    return EdgeContext(
        store=SnapshotStore(),
        registry=CollectorRegistry(),
        consul=ConsulSettings(),
        transport=FastTransport(),
    )


def test_without_the_section_no_filter() -> None:
    feature = ExtAuthzFeature(config(), context())
    assert feature.before_routing() == feature.after_routing() == feature.before_proxy() == []
    # The mark of a request let through unchecked is never the client's to send.
    assert feature.strip_headers() == {"x-meshgate-ext-authz"}
    assert feature.view()["configured"] is False


def test_with_the_section_one_filter_after_routing() -> None:
    feature = ExtAuthzFeature(config(SECTION), context())
    [flt] = feature.after_routing()
    assert isinstance(flt, ExtAuthzFilter)
    assert feature.before_routing() == feature.before_proxy() == []
    view = feature.view()
    assert view["configured"] is True
    assert view["destination"] == "service authz, path prefix /check"
    assert view["settings"]["failure_mode"] == "deny"
    # Values of check_headers may be secrets: only their names are shown.
    assert view["check_headers"] == ["X-Key"]
    assert "s3cret" not in str(view)
    assert (view["failing"], view["last_error"]) == (False, None)


def test_a_reload_adds_changes_and_removes_it() -> None:
    feature = ExtAuthzFeature(config(), context())
    reload = feature.prepare_reload(config(SECTION))
    assert reload.keys == ("ext_authz",)
    assert feature.after_routing() == []  # nothing before the commit
    reload.commit()
    [first] = feature.after_routing()
    feature.prepare_reload(config({**SECTION, "failure_mode": "allow"})).commit()
    [second] = feature.after_routing()
    assert second is not first
    assert feature.view()["settings"]["failure_mode"] == "allow"
    feature.prepare_reload(config()).commit()
    assert feature.after_routing() == []
    assert feature.view()["configured"] is False


def bare() -> EdgeContext:
    return EdgeContext(store=SnapshotStore(), registry=CollectorRegistry(), consul=ConsulSettings())


def test_an_https_url_needs_no_transport_an_http_one_does() -> None:
    [flt] = ExtAuthzFeature(config({"url": "https://authz.example"}), bare()).after_routing()
    assert isinstance(flt, ExtAuthzFilter)
    with pytest.raises(ValueError, match="needs the proxy's transport"):
        ExtAuthzFeature(config({"url": "http://authz.example"}), bare())


def test_in_the_pipeline_after_authentication_and_before_the_rate_limits() -> None:
    edge = config(
        SECTION,
        auth={"jwks": {"url": "http://auth/jwks"}, "issuer": "i", "audience": "a"},
        rate_limits={
            "redis": {"url": "redis://127.0.0.1:1/0"},
            "policies": {"p": {"count_by": "ip", "limit": "1/s"}},
            "default_policies": ["p"],
        },
    )
    after = [f for feature in build_features(edge, context()) for f in feature.after_routing()]
    kinds = [
        type(f) for f in after if type(f) in (AuthenticateFilter, ExtAuthzFilter, RateLimitFilter)
    ]
    assert kinds == [AuthenticateFilter, ExtAuthzFilter, RateLimitFilter]
