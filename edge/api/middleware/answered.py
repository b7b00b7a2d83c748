"""The base of the middlewares that record a finished request (metrics, access log)."""

from __future__ import annotations

from ecolens.edge.api.context import RequestInfo
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class WhenAnswered:
    """Calls :meth:`record` once per request: before the last byte of the answer leaves (a
    client that reads the log right after its answer finds its line), or when the app returns
    without a complete answer (a client that left)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def record(self, scope: Scope, info: RequestInfo) -> None:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = scope["ecolens"]
        recorded = False

        async def send_recording(message: Message) -> None:
            nonlocal recorded
            if not recorded and message["type"] == "http.response.body" and not message.get("more_body"):
                recorded = True
                self.record(scope, info)
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            if not recorded:
                self.record(scope, info)
