"""Typed API errors and their one JSON shape: ``{"error": {"code", "message", "request_id"}}``.

The base type and the body are core.http's (the fleet dashboard answers alike). Every failure,
ours or Werkzeug's (404, 405, 413...), leaves as that JSON with the right status; an unexpected
exception becomes a bare 500 without a traceback (which goes to the log only).
"""

from __future__ import annotations

import logging

from ecolens.core.errors import ImageError, ImageTooLargeError
from ecolens.core.http.errors import Forbidden, HttpError, Unauthorized, error_body
from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

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


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify(error_body(code, message, g.get("request_id")))
    response.status_code = status
    return response


def _http_code(exc: HTTPException) -> str:
    if exc.code == 413:
        return PayloadTooLarge.code
    return (exc.name or "error").lower().replace(" ", "_")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = "request body is larger than the limit (limits.max_body_bytes)"
        response = error_response(status, _http_code(exc), message)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error (request %s)", g.get("request_id"))
        return error_response(500, "internal_error", "internal error; see the server log")


__all__ = ["ApiError", "Forbidden", "Unauthorized"]
