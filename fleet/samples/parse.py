"""A sample message from a bin (``{"result": <contract result>, "jpeg": <base64>}``) checked and
taken apart, or refused with the reason: nothing a broker client sends is stored unchecked."""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from ecolens.core.errors import EcoLensError
from ecolens.fleet.payload import PayloadError, check_values, decode_payload

# a file name of its own: no path separator, and no leading dot (".." would leave the folder)
SAFE_ID = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
MAX_SAMPLE_BYTES = 16 * 1024 * 1024  # a 320 px crop is ~30 kB; the daemon's largest (4096 px) fits
MAX_SIDE = 4096  # the daemon's largest crop; a bigger header is a decompression bomb
MIN_SIDE = 8


class SampleRejected(EcoLensError):
    """A sample message that is not stored, with the reason."""


def parse_sample(device_id: str, payload: bytes) -> tuple[dict[str, Any], bytes]:
    """(result, jpeg bytes) from a sample message; SampleRejected for anything else. The
    payload checks are the result path's (fleet/payload.py: UTF-8, finite numbers, no NUL or
    lone surrogate, bounded nesting), so nothing a broker client sends can stop the subscriber
    or make SQLite refuse the row; the ids become file names, so they must be plain names."""
    try:
        _, body = decode_payload(payload, MAX_SAMPLE_BYTES, max_string_chars=MAX_SAMPLE_BYTES)
        if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
            raise PayloadError("not a JSON object with a result object")
        result = body["result"]
        check_values(result)  # the result's strings are bounded as a result message's are
        jpeg = base64.b64decode(body.get("jpeg", ""), validate=True)
    except (PayloadError, TypeError, binascii.Error) as exc:
        raise SampleRejected(f"malformed sample: {exc}") from None
    event_id, model, confidence = result.get("event_id"), result.get("model"), result.get("confidence")
    if not isinstance(event_id, str) or not SAFE_ID.match(event_id) or not SAFE_ID.match(device_id):
        raise SampleRejected("sample event or device id is missing or not a plain name")
    if not isinstance(result.get("label"), str) or not isinstance(model, dict):
        raise SampleRejected("sample result has no label or no model")
    if not all(isinstance(model.get(key), str) for key in ("version", "sha256")):
        raise SampleRejected("sample result's model has no version or sha256")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
        raise SampleRejected("sample confidence is not a number between 0 and 1")
    check_jpeg(jpeg)
    return result, jpeg


def check_jpeg(data: bytes) -> None:
    """Refuse anything but a JPEG that decodes whole, of a crop's size: JPEG magic bytes in front
    of anything else would otherwise be kept, exported and fed to `ecolens adapt`."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            width, height = image.size
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise SampleRejected(
                    f"sample image is {width}x{height} px, not between {MIN_SIDE} and {MAX_SIDE} px a side"
                )
            image.load()  # decodes every block: a truncated or corrupt image fails here
    except SampleRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds; each is "not an image"
        raise SampleRejected(f"sample image is not a JPEG that decodes: {str(exc)[:120]}") from None
