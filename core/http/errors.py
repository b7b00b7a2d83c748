"""HTTP-typed errors and the one JSON error body ``{"error": {"code", "message"[, "request_id"]}}``."""

from __future__ import annotations

from typing import Any

from ecolens.core.errors import EcoLensError


class HttpError(EcoLensError):
    """An error with an HTTP status and a stable machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Unauthorized(HttpError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str, *, realm: str = "ecolens", scheme: str = "Bearer") -> None:
        super().__init__(message, headers={"WWW-Authenticate": f'{scheme} realm="{realm}"'})


class Forbidden(HttpError):
    status, code = 403, "forbidden"


def error_body(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """The JSON body of every error answer, whichever server sends it."""
    error: dict[str, Any] = {"code": code, "message": message}
    if request_id:
        error["request_id"] = request_id
    return {"error": error}
