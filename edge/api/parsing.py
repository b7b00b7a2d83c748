"""Every accepted request shape -> a list of encoded image bytes.

Accepted (``POST /predict``):

* JSON ``{"image": "<base64>"}``; the string may also be a data URL (``data:image/png;base64,..``)
* TF Serving's ``{"b64": "..."}``, alone or as ``{"image": {"b64": "..."}}``
* a batch: ``{"images": [...]}`` or TF Serving's ``{"instances": [...]}`` of the above
* a raw ``image/jpeg`` / ``image/png`` / ``image/webp`` / ``image/bmp`` body
* ``multipart/form-data`` with a file field ``image`` (or several ``images``)

``curl -d`` sends ``application/x-www-form-urlencoded``; such a body is read as JSON so the
README's one-liner works.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ecolens.edge.api.errors import (
    BadRequest,
    InvalidBase64,
    InvalidJson,
    MissingField,
    TooManyImages,
    UnsupportedMediaType,
)
from starlette.datastructures import Headers, UploadFile

RAW_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/bmp"})
JSON_FIELDS = ("image", "images", "b64", "instances")
DATA_URL = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(;[^,;]*)*),(?P<data>.*)$", re.DOTALL)
WHITESPACE = re.compile(r"\s+")
SHAPES = 'send {"image": "<base64>"}, {"b64": ...}, {"images": [...]} or an image/* body'


@dataclass(frozen=True)
class ImagePayload:
    """The images of one request; ``batch`` decides between a result and a list of them."""

    images: list[bytes]
    batch: bool


def media_type(content_type: str) -> str:
    """``image/JPEG; q=1`` -> ``image/jpeg``."""
    return content_type.split(";", 1)[0].strip().lower()


async def parse_request(headers: Headers, body: bytes, max_batch: int) -> ImagePayload:
    """Dispatch on Content-Type; raise ApiError subclasses for anything unusable."""
    mimetype = media_type(headers.get("content-type", ""))
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return parse_json_body(body, max_batch)
    if mimetype == "application/x-www-form-urlencoded":
        if body.lstrip()[:1] != b"{":
            raise UnsupportedMediaType("form-encoded bodies are not accepted; " + SHAPES)
        return parse_json_body(body, max_batch)
    if mimetype in RAW_IMAGE_TYPES:
        if not body:
            raise MissingField("the request body is empty")
        return ImagePayload([body], batch=False)
    if mimetype == "multipart/form-data":
        return await parse_multipart(headers, body, max_batch)
    if not mimetype:
        raise UnsupportedMediaType("missing Content-Type; " + SHAPES)
    raise UnsupportedMediaType(f"unsupported Content-Type {mimetype[:100]!r}; " + SHAPES)


async def parse_multipart(headers: Headers, body: bytes, max_batch: int) -> ImagePayload:
    """Fields ``image`` (one) or ``images`` (several), parsed by python-multipart. A part without
    a filename is an image too (RFC 7578 makes the filename optional): the parser is told the
    charset is latin-1, so such a part's text encodes back to exactly the bytes sent."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    content_type = headers.get("content-type", "") + "; charset=latin-1"
    latin1 = Headers(raw=[(b"content-type", content_type.encode("latin-1"))])
    parser = MultiPartParser(latin1, stream(), max_files=max_batch + 1, max_fields=100)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "Too many files" in exc.message:
            raise TooManyImages(f"more than {max_batch} images (limits.max_batch)") from None
        raise BadRequest(f"malformed multipart body: {exc.message}") from None
    try:
        unknown = sorted(set(form.keys()) - {"image", "images"})
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))[:200]}; " + SHAPES)
        singles = form.getlist("image")
        many = form.getlist("images")
        if singles and many:
            raise BadRequest("send either 'image' or 'images' files, not both")
        if len(singles) > 1:
            raise BadRequest("'image' holds one file; use 'images' for several")
        files = many or singles
        if not files:
            raise MissingField("multipart body has no file field 'image' (or 'images')")
        if len(files) > max_batch:
            raise TooManyImages(f"{len(files)} images, the limit is {max_batch} (limits.max_batch)")
        images = []
        for index, upload in enumerate(files):
            if isinstance(upload, UploadFile):
                data, name = await upload.read(), upload.filename or "unnamed"
            else:
                data, name = upload.encode("latin-1"), "unnamed"
            if not data:
                raise MissingField(f"uploaded file {index} ({name}) is empty")
            images.append(data)
    finally:
        await form.close()
    return ImagePayload(images, batch=bool(many))


def parse_json_body(body: bytes, max_batch: int) -> ImagePayload:
    if not body.strip():
        raise MissingField("the request body is empty; " + SHAPES)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidJson(f"body is not valid JSON: {str(exc)[:200]}") from None
    return parse_json_document(document, max_batch)


def parse_json_document(document: Any, max_batch: int) -> ImagePayload:
    if not isinstance(document, dict):
        raise BadRequest("the JSON body must be an object; " + SHAPES)
    present = [name for name in JSON_FIELDS if name in document]
    unknown = sorted(set(document) - set(JSON_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))[:200]}; " + SHAPES)
    if not present:
        raise MissingField("missing field 'image'; " + SHAPES)
    if len(present) > 1:
        raise BadRequest(f"give only one of {', '.join(present)}")
    field = present[0]
    value = document[field]
    if field == "b64":
        return ImagePayload([decode_base64(value, "b64")], batch=False)
    if field == "image":
        return ImagePayload([image_from_json(value, "image")], batch=False)
    if not isinstance(value, list):
        raise BadRequest(f"'{field}' must be a list of images")
    if not value:
        raise MissingField(f"'{field}' is empty")
    if len(value) > max_batch:
        raise TooManyImages(f"{len(value)} images, the limit is {max_batch} (limits.max_batch)")
    return ImagePayload([image_from_json(item, f"{field}[{i}]") for i, item in enumerate(value)], batch=True)


def image_from_json(value: Any, where: str) -> bytes:
    """A base64 string, a data URL or ``{"b64": "..."}``."""
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise BadRequest(f'{where}: an image object must be exactly {{"b64": "..."}}')
        return decode_base64(value["b64"], f"{where}.b64")
    return decode_base64(value, where)


def decode_base64(value: Any, where: str) -> bytes:
    """Standard or URL-safe base64, padding optional, whitespace ignored; or a data URL."""
    if not isinstance(value, str):
        raise BadRequest(f"{where}: expected a base64 string, got {type(value).__name__}")
    match = DATA_URL.match(value.lstrip())
    if match:
        media_type = match["type"].strip().lower()
        if ";base64" not in match["params"].lower():
            raise InvalidBase64(f"{where}: data URL must be base64 encoded (';base64,')")
        if media_type and not media_type.startswith("image/"):
            raise UnsupportedMediaType(f"{where}: data URL type {media_type[:50]!r} is not image/*")
        value = match["data"]
    try:  # the common case, standard padded base64 on one line: no copy, no regex pass
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if data:
        return data
    text = WHITESPACE.sub("", value)
    if not text:
        raise MissingField(f"{where}: the image is empty")
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidBase64(f"{where}: not valid base64") from None
    if not data:
        raise MissingField(f"{where}: the image is empty")
    return data
