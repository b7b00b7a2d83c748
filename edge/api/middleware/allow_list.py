"""Refuses (403) a client whose address is not in ``[auth] allow_cidrs``. Composed only when the
list is not empty."""

from __future__ import annotations

from ecolens.edge.api.auth import ClientFilter
from starlette.types import ASGIApp, Receive, Scope, Send


class AllowListMiddleware:
    def __init__(self, app: ASGIApp, clients: ClientFilter) -> None:
        self.app = app
        self.clients = clients

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.clients.check(scope["ecolens"].remote)
        await self.app(scope, receive, send)
