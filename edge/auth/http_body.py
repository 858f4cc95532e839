"""Reading an aiohttp response body with a size bound, for the auth service clients."""

from __future__ import annotations

import aiohttp


class BodyTooLarge(Exception):
    """The response body exceeded the caller's limit; reading stopped there."""


async def read_bounded(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body of ``response``, or BodyTooLarge once it passes ``max_bytes``.

    Refuses early on a declared Content-Length over the limit, and otherwise
    stops reading as soon as the limit is crossed, so a hostile or broken
    server cannot make the edge buffer an unbounded body.
    """
    if (response.content_length or 0) > max_bytes:
        raise BodyTooLarge(f"body over {max_bytes} bytes")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"body over {max_bytes} bytes")
    return bytes(body)
