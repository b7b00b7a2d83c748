"""Reading a request body from the ASGI ``receive`` channel with a size limit and a deadline, so
a client that trickles its body (one byte every few seconds) holds nothing but its own socket
and is cut off with a 408 once ``server.body_timeout`` has passed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ecolens.edge.api.errors import PayloadTooLarge, RequestTimeout

Receive = Callable[[], Awaitable[dict[str, Any]]]


class ClientGone(Exception):
    """The client closed the connection before its body arrived: nobody to answer."""


async def read_body(receive: Receive, limit: int, timeout: float) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes (a chunked body
    announces no length) and with 408 when it is not complete within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise_timeout(timeout)
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except asyncio.TimeoutError:
            raise_timeout(timeout)
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    "request body is larger than the limit (limits.max_body_bytes)",
                    headers={"Connection": "close"},
                )
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def raise_timeout(timeout: float) -> None:
    raise RequestTimeout(
        f"the request body did not arrive within {timeout:g} s (server.body_timeout)",
        headers={"Connection": "close"},
    )
