"""Opens each request's :class:`~ecolens.edge.api.context.RequestInfo` (``scope["ecolens"]``):
the request id, the peer, the headers read once for every inner middleware, the arrival time;
echoes the id as ``X-Request-Id`` on every answer and notes the answer's status."""

from __future__ import annotations

from ecolens.edge.api.context import open_request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = open_request(dict(scope["headers"]), scope["client"][0] if scope.get("client") else None)
        scope["ecolens"] = info
        id_header = (b"x-request-id", info.request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                info.status, info.responded = message["status"], True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        await self.app(scope, receive, send_with_id)
