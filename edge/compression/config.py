"""The ``compression`` section of the edge's config: gzip for the services' answers."""

from __future__ import annotations

from pydantic import Field, field_validator

from mesh.config.types import ByteSize, Frozen
from mesh.http.compression import check_pattern

DEFAULT_CONTENT_TYPES = (
    "text/html",
    "text/plain",
    "text/css",
    "text/csv",
    "text/javascript",
    "text/markdown",
    "text/xml",
    "application/javascript",
    "application/json",
    "application/*+json",
    "application/xml",
    "application/*+xml",
    "application/wasm",
    "image/svg+xml",
)
"""Text formats that shrink well; not streams read as they arrive (``text/event-stream``
is never compressed, ``application/x-ndjson`` is left out by default)."""


class CompressionConfig(Frozen):
    """Gzip the services' answers for clients that accept it (see
    :mod:`mesh.http.compression` for when an answer is left alone)."""

    min_size: ByteSize = 1024
    """Answers declaring a smaller ``Content-Length`` are sent as they are (gzip's
    framing would outweigh the saving); answers of unknown length are compressed."""
    content_types: tuple[str, ...] = Field(default=DEFAULT_CONTENT_TYPES, min_length=1)
    """Media types compressed: ``type/subtype``, ``type/*`` or ``type/*+suffix``."""
    level: int = Field(default=6, ge=1, le=9)
    """zlib's level: 1 is fastest, 9 smallest; 6 is zlib's own default."""

    @field_validator("content_types")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            problem = check_pattern(pattern)
            if problem is not None:
                raise ValueError(problem)
        return value
