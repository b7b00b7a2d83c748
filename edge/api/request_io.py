"""Reading a request body and writing a JSON answer: the helpers every endpoint module (``routes``,
``tfserving``) shares, so neither imports the other."""

from __future__ import annotations

import json
from typing import Any

from ecolens.edge.api.body import read_body
from ecolens.edge.api.state import ApiState
from starlette.requests import Request
from starlette.responses import Response

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_response(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(document).encode(), status, headers, media_type="application/json")


def state_of(request: Request) -> ApiState:
    return request.app.state.ecolens


async def read_request_body(request: Request) -> bytes:
    config = state_of(request).config
    return await read_body(request.receive, config.limits.max_body_bytes, config.server.body_timeout)
