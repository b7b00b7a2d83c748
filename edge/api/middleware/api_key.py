"""Refuses (401) a request to a protected endpoint without a valid key; a valid key's id becomes
the request's client (for the rate limit and the access log). Composed only when keys are
configured."""

from __future__ import annotations

from ecolens.core.http.keys import KeyStore
from ecolens.edge.api.admission import is_protected, key_client
from ecolens.edge.api.settings import ApiConfig
from starlette.types import ASGIApp, Receive, Scope, Send


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: KeyStore, config: ApiConfig) -> None:
        self.app = app
        self.keys = keys
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_protected(scope["path"], self.config):
            info = scope["ecolens"]
            info.client = key_client(self.keys, info.header(b"authorization"), info.header(b"x-api-key"))
        await self.app(scope, receive, send)
