"""When an answer is gzipped, and what its headers become: the pure decisions."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from mesh.http.compression import (
    ContentTypes,
    ResponseCompression,
    accepts_gzip,
    check_pattern,
    media_type,
    weak_etag,
)

TYPES = ("text/html", "application/json", "application/*+json", "image/*")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("br, deflate", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),  # named beats the wildcard
        ("br;q=1, *;q=0.1", True),
        ("identity", False),
        ("gzip;q=abc", False),  # an unreadable weight is no acceptance
        ("gzip;q=2", False),
        ("gzip;level=1", True),
    ],
)
def test_accepts_gzip(accept: str | None, expected: bool) -> None:
    assert accepts_gzip(accept) is expected


def test_media_type() -> None:
    assert media_type("Text/HTML; charset=utf-8") == "text/html"
    assert media_type(None) == ""
    assert media_type("") == ""


def test_content_types_match_exact_kind_and_suffix() -> None:
    types = ContentTypes(TYPES)
    assert "text/html" in types
    assert "application/problem+json" in types
    assert "image/png" in types
    assert "text/plain" not in types
    assert "application/jsonx" not in types
    assert "" not in types
    assert "text/event-stream" not in ContentTypes(["text/event-stream"])


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("text/html", None),
        ("application/*", None),
        ("application/*+json", None),
        ("json", "is not a media type"),
        ("*/json", "is not a media type"),
        ("text/html; charset=utf-8", "is not a media type"),
        ("application/x*", "wildcard subtype"),
        ("application/*+", "wildcard subtype"),
        ("text/*", "text/event-stream"),
        ("text/event-stream", "text/event-stream"),
    ],
)
def test_check_pattern(pattern: str, problem: str | None) -> None:
    found = check_pattern(pattern)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_weak_etag() -> None:
    assert weak_etag('"abc"') == 'W/"abc"'
    assert weak_etag('W/"abc"') == 'W/"abc"'


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in values.items()})


class Counted:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_a_compressible_answer_for_a_gzip_client() -> None:
    counted = Counted()
    policy = ResponseCompression(TYPES, 1024, counted)
    h = headers(Content_Type="application/json", ETag='"v1"', Vary="Origin")
    assert policy.decide("GET", "gzip, br", 200, h, 5000)
    assert h["Vary"] == "Origin, Accept-Encoding"
    assert h["ETag"] == 'W/"v1"'
    assert counted.calls == 1


def test_a_client_without_gzip_gets_vary_only() -> None:
    counted = Counted()
    policy = ResponseCompression(TYPES, 1024, counted)
    for accept in (None, "br", "gzip;q=0"):
        h = headers(Content_Type="application/json", ETag='"v1"')
        assert not policy.decide("GET", accept, 200, h, 5000)
        assert h["Vary"] == "Accept-Encoding"
        assert h["ETag"] == '"v1"'  # unchanged bytes keep their strong validator
    h = headers(Content_Type="application/json")
    assert not policy.decide("HEAD", "gzip", 200, h, 5000)
    assert h["Vary"] == "Accept-Encoding"
    assert counted.calls == 0


@pytest.mark.parametrize(
    ("status", "values", "size"),
    [
        (200, {"Content-Type": "video/mp4"}, 5000),  # not listed
        (200, {"Content-Type": "application/json"}, 1023),  # under min_size
        (200, {"Content-Type": "application/json"}, 0),
        (200, {"Content-Type": "application/json", "Content-Encoding": "br"}, 5000),
        (206, {"Content-Type": "application/json"}, 5000),
        (200, {"Content-Type": "application/json", "Content-Range": "bytes 0-9/99"}, 10_000),
        (200, {"Content-Type": "application/json", "Cache-Control": "public, No-Transform"}, None),
        (204, {"Content-Type": "application/json"}, None),
        (304, {"Content-Type": "application/json"}, None),
        (101, {"Content-Type": "application/json"}, None),
        (200, {}, 5000),  # no type: unknown content is left alone
        (200, {"Content-Type": "text/event-stream"}, None),
    ],
)
def test_answers_left_alone(status: int, values: dict[str, str], size: int | None) -> None:
    policy = ResponseCompression((*TYPES, "text/event-stream"), 1024)
    h = CIMultiDict(values)
    assert not policy.decide("GET", "gzip", status, h, size)
    assert "Vary" not in h  # not compressible for anyone: no Vary added


def test_unknown_length_and_identity_encoding_are_compressed() -> None:
    policy = ResponseCompression(TYPES, 1024)
    assert policy.decide("GET", "gzip", 200, headers(Content_Type="text/html"), None)
    h = headers(Content_Type="text/html", Content_Encoding="identity")
    assert policy.decide("GET", "gzip", 500, h, 2000)  # error pages shrink too


def test_the_accept_encoding_memo_stays_bounded() -> None:
    policy = ResponseCompression(TYPES, 1)
    for i in range(1000):
        assert policy.decide("GET", f"gzip;q=0.{i % 9 + 1}, x{i}", 200, headers(), None) is False
        h = headers(Content_Type="text/html")
        assert policy.decide("GET", f"gzip;q=0.{i % 9 + 1}, x{i}", 200, h, None)
    assert len(policy._accepts) <= 256


def test_gzip_whole_and_streamed_decompress_to_the_body_at_every_level() -> None:
    import gzip

    body = b"".join(b'{"n":%d,"sq":%d},' % (i, i * i) for i in range(3000))
    sizes = {}
    for level in (1, 6, 9):
        policy = ResponseCompression(TYPES, 1, level=level)
        whole = policy.gzip(body)
        assert gzip.decompress(whole) == body
        sizes[level] = len(whole)
        compressor = policy.compressor()
        pieces = [compressor.compress(body[i : i + 1000]) for i in range(0, len(body), 1000)]
        assert gzip.decompress(b"".join(pieces) + compressor.flush()) == body
    assert sizes[9] <= sizes[6] < sizes[1] < len(body) / 3
