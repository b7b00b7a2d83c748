"""Refuses (429, Retry-After) a client's prediction over ``[limits] rate``. Composed only when a
rate is set."""

from __future__ import annotations

from ecolens.edge.api.admission import is_predict
from ecolens.edge.api.ratelimit import RateLimit
from starlette.types import ASGIApp, Receive, Scope, Send


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, rate: RateLimit) -> None:
        self.app = app
        self.rate = rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_predict(scope["method"], scope["path"]):
            self.rate.check(scope["ecolens"].client)
        await self.app(scope, receive, send)
