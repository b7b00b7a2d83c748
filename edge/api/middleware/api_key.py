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
            authorization = info.headers.get(b"authorization")
            api_key = info.headers.get(b"x-api-key")
            info.client = key_client(
                self.keys,
                authorization.decode("latin-1") if authorization is not None else None,
                api_key.decode("latin-1") if api_key is not None else None,
            )
        await self.app(scope, receive, send)
