"""``X-Content-Type-Options: nosniff`` on every answer, and ``Cache-Control: no-store`` unless
the endpoint chose its own caching (an answer about one request is not for a shared cache)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")


def security_headers(cache_control_set: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every answer gets (the Flask adapter adds them too)."""
    return (NOSNIFF,) if cache_control_set else (NOSNIFF, NO_STORE)


def with_security_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` and the security headers after them."""
    return [*headers, *security_headers(any(name == b"cache-control" for name, _ in headers))]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, send_with_headers)
