"""Surrogate keys: the tags a service puts on its answer, to purge every entry of one tag.

A service names what an answer was made of in a response header, ``Surrogate-Key``
by default (Fastly's name; Varnish's xkey and Cloudflare's ``Cache-Tag`` are the
same idea): ``Surrogate-Key: user-7 team-3``. When user 7 changes, one purge,
``{"tags": ["user-7"]}``, removes every stored answer that named it, whatever its
path, query or route. Tags are separated by spaces or commas; their order and
repeats do not matter.

An answer whose tags could not all be kept (more than :data:`MAX_TAGS`, or one
longer than :data:`MAX_TAG_LENGTH` bytes) is not stored at all: an entry a purge by
one of its tags would miss could be served after its resource changed. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_HEADER = "Surrogate-Key"
MAX_TAGS = 256
"""Most tags one answer may carry and be stored."""
MAX_TAG_LENGTH = 1024
"""Longest tag, in bytes of its UTF-8 form (Fastly's bound for a surrogate key)."""

_SEPARATORS = re.compile(r"[\s,]+")


def parse_tags(values: Iterable[str]) -> tuple[str, ...] | None:
    """The distinct tags of a header's lines ``values``, in their first order; None when
    they break :data:`MAX_TAGS` or :data:`MAX_TAG_LENGTH` (the answer may not be stored)."""
    tags: dict[str, None] = {}
    for value in values:
        for tag in _SEPARATORS.split(value):
            if tag:
                if len(tag.encode()) > MAX_TAG_LENGTH:
                    return None
                tags[tag] = None
    if len(tags) > MAX_TAGS:
        return None
    return tuple(tags)


def tag_problem(tag: object) -> str | None:
    """Why ``tag`` (from a purge's body) can never name a stored tag; None when it can."""
    if not isinstance(tag, str) or not tag:
        return "a tag is a non-empty string"
    if _SEPARATORS.search(tag):
        return f"{tag!r}: a tag holds no space or comma"
    if len(tag.encode()) > MAX_TAG_LENGTH:
        return f"a tag is at most {MAX_TAG_LENGTH} bytes"
    return None
