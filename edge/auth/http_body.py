"""Reading an auth service's response body with a size bound, whichever client read it."""

from __future__ import annotations

from collections.abc import AsyncIterable

import aiohttp


class BodyTooLarge(Exception):
    """The response body exceeded the caller's limit; reading stopped there."""


async def read_limited(
    chunks: AsyncIterable[bytes], declared_length: int | None, max_bytes: int
) -> bytes:
    """The whole body from ``chunks``, or BodyTooLarge once it passes ``max_bytes``.

    Refuses early on a declared length (Content-Length) over the limit, and
    otherwise stops reading as soon as the limit is crossed, so a hostile or
    broken server cannot make the edge buffer an unbounded body.
    """
    if (declared_length or 0) > max_bytes:
        raise BodyTooLarge(f"body over {max_bytes} bytes")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"body over {max_bytes} bytes")
    return bytes(body)


async def read_bounded(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """:func:`read_limited` of an aiohttp response."""
    return await read_limited(
        response.content.iter_chunked(64 * 1024), response.content_length, max_bytes
    )
