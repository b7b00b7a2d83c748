"""A WSGI request, as the shared request path sees it: the ASGI ``scope`` facts and ``receive``
channel the endpoints read (through a Starlette ``Request``, as under uvicorn), run on this
thread's own event loop, and the answer they send collected for Flask.

The endpoints are async (the ASGI server runs them on its loop). A WSGI worker thread has no
loop, so each thread makes one, once, and runs each request's coroutine on it to the end: small
images are classified inline on the thread, larger ones in the worker's shared inference pool
(``server.threads``), so the memory bound on decoded pixels is the same as under uvicorn."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from ecolens.edge.api.errors import Answer

T = TypeVar("T")
READ_SIZE = 65536
# Connection handling is the WSGI server's (PEP 3333 forbids an app to send these).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers"}
    | {"transfer-encoding", "upgrade"}
)
_thread = threading.local()


def run(coroutine: Awaitable[T]) -> T:
    """``coroutine``'s result, run on this thread's event loop (made at its first request)."""
    loop = getattr(_thread, "loop", None)
    if loop is None:
        loop = _thread.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine)


def raw_headers(environ: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """The request's headers as ASGI spells them (lower-case names, latin-1 bytes)."""
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key
        else:
            continue
        headers.append((name.replace("_", "-").lower().encode("latin-1"), value.encode("latin-1")))
    return headers


class BodyReader:
    """The ASGI ``receive`` channel over the WSGI input, read by ``body.read_body`` (which
    applies the size limit and the deadline). Under gunicorn each read waits on the socket at
    most until ``server.body_timeout`` has passed since the request arrived, so a client that
    stops sending gets the same 408; a client that trickles bytes keeps its thread until then
    only as long as each read completes (see docs/api.md on slow clients)."""

    def __init__(self, stream: Any, length: int | None, sock: Any, timeout: float) -> None:
        self.stream, self.length, self.sock = stream, length, sock
        self.deadline = time.monotonic() + timeout
        self.got = 0

    async def __call__(self) -> dict[str, Any]:
        left = READ_SIZE if self.length is None else min(READ_SIZE, self.length - self.got)
        try:
            chunk = self.read(left) if left > 0 else b""
        except TimeoutError:  # the socket's deadline: read_body answers 408
            raise asyncio.TimeoutError from None
        except Exception:  # the client left, or broke its chunked encoding: nobody to answer
            return {"type": "http.disconnect"}
        self.got += len(chunk)
        if not chunk and self.length is not None and self.got < self.length:
            return {"type": "http.disconnect"}
        more = bool(chunk) and (self.length is None or self.got < self.length)
        return {"type": "http.request", "body": chunk, "more_body": more}

    def read(self, size: int) -> bytes:
        if self.sock is None:
            return self.stream.read(size)
        prior = self.sock.gettimeout()
        self.sock.settimeout(max(self.deadline - time.monotonic(), 0.001))
        try:
            return self.stream.read(size)
        finally:
            self.sock.settimeout(prior)


async def call(app: Any, scope: dict[str, Any], receive: Any) -> Answer:
    """Run the ASGI ``app`` (the shared router) for ``scope``; its answer as (status, headers,
    body). Its failures are raised, for the caller's error mapping."""
    answer: dict[str, Any] = {"status": 500, "headers": [], "body": []}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            answer["body"].append(message.get("body", b""))

    await app(scope, receive, send)
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in answer["headers"]]
    return answer["status"], headers, b"".join(answer["body"])
