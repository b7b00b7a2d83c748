"""Typed API errors and their one JSON shape: ``{"error": {"code", "message", "request_id"}}``
(TF Serving's ``{"error": "message"}`` on the ``/v1/models/...`` routes).

The base type and the body are core.http's (the fleet dashboard answers alike). Every failure,
ours or the router's (404, 405), leaves as that JSON with the right status; an unexpected
exception becomes a bare 500 without a traceback (which goes to the log only).
"""

from __future__ import annotations

import json
import logging

from ecolens.core.errors import ImageError, ImageTooLargeError
from ecolens.core.http.errors import Forbidden, HttpError, Unauthorized, error_body

log = logging.getLogger("ecolens.api")
ApiError = HttpError  # the API's errors are the shared HTTP errors


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class InvalidJson(ApiError):
    status, code = 400, "invalid_json"


class InvalidBase64(ApiError):
    status, code = 400, "invalid_base64"


class MissingField(ApiError):
    status, code = 400, "missing_field"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class TooManyImages(ApiError):
    status, code = 413, "too_many_images"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class UndecodableImage(ApiError):
    status, code = 422, "invalid_image"


class ImageTooLarge(ApiError):
    status, code = 422, "image_too_large"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"


class ModelNotReady(ApiError):
    status, code = 503, "model_not_ready"


def from_image_error(exc: ImageError, where: str = "") -> ApiError:
    """Map the preprocessing errors to 422s, naming the image in a batch."""
    prefix = f"{where}: " if where else ""
    if isinstance(exc, ImageTooLargeError):
        return ImageTooLarge(prefix + str(exc))
    return UndecodableImage(prefix + str(exc))


class RequestTimeout(ApiError):
    status, code = 408, "request_timeout"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class InternalError(ApiError):
    status, code = 500, "internal_error"


def error_json(code: str, message: str, request_id: str | None, tf_serving: bool) -> bytes:
    """The encoded body of an error: core.http's shape, or TF Serving's {"error": "message"}
    on its routes."""
    body = {"error": message} if tf_serving else error_body(code, message, request_id)
    return json.dumps(body, separators=(",", ":")).encode()


Answer = tuple[int, list[tuple[str, str]], bytes]  # status, headers (lower-case names), body


def error_answer(exc: ApiError, request_id: str, tf_serving: bool) -> Answer:
    """(status, headers, body) of an error answer, whatever the transport writes it with."""
    body = error_json(exc.code, exc.message, request_id, tf_serving)
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    return exc.status, headers + [(name.lower(), value) for name, value in exc.headers.items()], body


def from_http_exception(exc: Exception) -> ApiError:
    """Starlette's routing errors (404, 405) as ApiErrors."""
    status = getattr(exc, "status_code", 500)
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 404:
        return NotFound("no such endpoint; see /openapi.json")
    if status == 405:
        return MethodNotAllowed("method not allowed for this endpoint", headers=headers)
    detail = str(getattr(exc, "detail", "") or "error")
    error = ApiError(detail, headers=headers)
    error.status, error.code = status, detail.lower().replace(" ", "_")
    return error


def as_api_error(exc: Exception, request_id: str) -> ApiError:
    """Any failure as the ApiError it is answered with: ours as they are, the router's (404,
    405) mapped, anything else a bare 500 whose traceback goes to the log only."""
    if isinstance(exc, ApiError):
        return exc
    if hasattr(exc, "status_code"):
        return from_http_exception(exc)
    log.error("unexpected error (request %s)", request_id, exc_info=exc)
    return InternalError("internal error; see the server log")


__all__ = ["ApiError", "Forbidden", "Unauthorized"]
