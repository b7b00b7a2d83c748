"""Opens each request's :class:`~ecolens.edge.api.context.RequestInfo` (``scope["ecolens"]``):
the request id, the peer, the headers read once for every inner middleware, the arrival time;
echoes the id as ``X-Request-Id`` on every answer and notes the answer's status."""

from __future__ import annotations

import time

from ecolens.edge.api.context import RequestInfo, request_id_from
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = request_id_from(headers.get(b"x-request-id", b"").decode("latin-1"))
        remote = scope["client"][0] if scope.get("client") else None
        info = RequestInfo(request_id, remote, remote or "unknown", headers, started)
        scope["ecolens"] = info
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                info.status, info.responded = message["status"], True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        await self.app(scope, receive, send_with_id)
