"""Every failure leaves as JSON with its status (TF Serving's shape on its routes), never a
traceback page; a client that left before its body arrived gets nothing and is logged as 499."""

from __future__ import annotations

from ecolens.edge.api.admission import is_tf_serving
from ecolens.edge.api.body import ClientGone
from ecolens.edge.api.errors import ApiError, as_api_error, error_answer
from starlette.types import ASGIApp, Receive, Scope, Send


class ErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except ClientGone:
            info = scope["ecolens"]
            info.status, info.error = 499, "client_closed_request"  # nobody is left to answer
        except Exception as exc:
            info = scope["ecolens"]
            error = as_api_error(exc, info.request_id)
            info.error = error.code
            if not info.responded:
                await send_error(send, error, info.request_id, is_tf_serving(scope["path"]))


async def send_error(send: Send, exc: ApiError, request_id: str, tf_serving: bool) -> None:
    status, headers, body = error_answer(exc, request_id, tf_serving)
    raw = [(name.encode(), value.encode()) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
