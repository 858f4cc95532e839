"""Stored entries for the cache's tests, made as the serving code makes them."""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDict

from edge.cache.freshness import Timing
from edge.cache.store import Entry
from edge.cache.vary import Variant


def make_entry(
    path: str = "/a",
    *,
    route: str = "r",
    host: str = "h",
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    variant: Variant = (),
    timing: Timing | None = None,
    shared: bool = False,
    tags: tuple[str, ...] = (),
) -> Entry:
    """A stored 200 of ``path`` (its key made of route, host, path and query); fresh for
    60 s from 0 unless ``timing`` says otherwise."""
    return Entry(
        key=(route, host, path, query),
        route=route,
        host=host,
        path=path,
        status=200,
        reason="OK",
        headers=CIMultiDict(headers or {}),
        body=body,
        variant=variant,
        timing=timing or Timing(lifetime=60, initial_age=0, received=0),
        shared=shared,
        tags=tags,
    )
