"""Refuses (413) a prediction whose Content-Length is over ``[limits] max_body_bytes`` before
its body is read (the body reader refuses an unannounced one as it arrives)."""

from __future__ import annotations

from ecolens.edge.api.admission import check_announced_size, is_predict
from starlette.types import ASGIApp, Receive, Scope, Send


class BodySizeMiddleware:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_predict(scope["method"], scope["path"]):
            check_announced_size(scope["ecolens"].headers.get(b"content-length"), self.limit)
        await self.app(scope, receive, send)
