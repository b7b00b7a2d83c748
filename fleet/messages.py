"""Turns one received MQTT message into what storage keeps: a result, a status change, or a
rejection with its reason. Never raises on bad input: a bin cannot crash the aggregator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ecolens.core.contract import validate_result
from ecolens.core.topics import RESULT, split_topic
from ecolens.fleet.payload import (
    INT_MAX,
    MAX_KEY_CHARS,
    MAX_PAYLOAD_BYTES,
    PayloadError,
    decode_payload,
    storable_string,
    storable_text,
)
from ecolens.fleet.storage.store import Rejected, StatusUpdate, StoredResult

STATUSES = ("online", "offline")
CAMERA_STATES = ("up", "down", "starting")
MAX_KEPT_PAYLOAD = 4096  # bytes of a rejected payload kept for inspection


def parse_timestamp_ms(text: str) -> int:
    """Contract timestamps are RFC 3339 UTC with 'Z' (the schema checked the pattern; the
    date itself may still be impossible: year 0, second 60, February 30)."""
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"timestamp {text[:40]!r} is not a real time: {exc}") from None


def make_rejected(topic: str, payload: bytes, received_ms: int, reason: str) -> Rejected:
    """What is kept of a refused message: every field storable whatever the bytes were."""
    text = payload[:MAX_KEPT_PAYLOAD].decode("utf-8", errors="replace")
    return Rejected(
        received_ms=received_ms,
        topic=storable_text(topic, 1024),
        reason=storable_text(reason, 1024),
        payload=storable_text(text, MAX_KEPT_PAYLOAD),
    )


def _validation_reason(result: Any) -> str | None:
    import jsonschema

    if not isinstance(result, dict):
        return "not a JSON object"
    try:
        validate_result(result)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"breaks the result contract at {where}: {exc.message}"
    return None


def parse_result(
    topic: str, device_id: str, payload: bytes, received_ms: int, max_bytes: int = MAX_PAYLOAD_BYTES
) -> StoredResult | Rejected:
    try:
        text, result = decode_payload(payload, max_bytes)
        for name in ("event_id", "label"):
            if isinstance(result, dict) and isinstance(result.get(name), str):
                storable_string(result[name], name, MAX_KEY_CHARS)
    except PayloadError as exc:
        return make_rejected(topic, payload, received_ms, str(exc))
    reason = _validation_reason(result)
    if reason:
        return make_rejected(topic, payload, received_ms, reason)
    if result.get("device_id", device_id) != device_id:
        mismatch = f"device_id {result['device_id']!r} does not match topic"
        return make_rejected(topic, payload, received_ms, mismatch)
    if "event_id" not in result:
        return make_rejected(topic, payload, received_ms, "no event_id: cannot be de-duplicated")
    if result["label"] not in result["scores"]:
        return make_rejected(topic, payload, received_ms, "label is not one of scores")
    if result.get("frames", 1) > INT_MAX:
        return make_rejected(topic, payload, received_ms, f"frames {result['frames']} is out of range")
    try:
        seen_ms = parse_timestamp_ms(result["timestamp"])
    except PayloadError as exc:
        return make_rejected(topic, payload, received_ms, str(exc))
    model = result["model"]
    return StoredResult(
        event_id=result["event_id"],
        device_id=device_id,
        seen_ms=seen_ms,
        received_ms=received_ms,
        label=result["label"],
        confidence=float(result["confidence"]),
        uncertain=bool(result["uncertain"]),
        inference_ms=float(result["inference_ms"]),
        frames=result.get("frames"),
        model_name=model["name"],
        model_version=model["version"],
        model_sha256=model["sha256"],
        payload=text,
        seq=result.get("seq"),
    )


def parse_status(topic: str, device_id: str, payload: bytes, received_ms: int) -> StatusUpdate | Rejected:
    """``online`` / ``offline`` as plain text, or a JSON object with a ``status`` key."""
    camera = None
    try:
        text, value = payload.decode("utf-8").strip(), None
        if text.startswith("{"):
            _, value = decode_payload(payload, MAX_KEPT_PAYLOAD)
            text = str(value.get("status", ""))
            camera = value.get("camera") if value.get("camera") in CAMERA_STATES else None
    except UnicodeDecodeError:
        return make_rejected(topic, payload, received_ms, "status is not UTF-8 text")
    except PayloadError as exc:
        return make_rejected(topic, payload, received_ms, f"status is not valid JSON: {exc}")
    if text.lower() not in STATUSES:
        return make_rejected(topic, payload, received_ms, "status must be online or offline")
    return StatusUpdate(device_id=device_id, status=text.lower(), at_ms=received_ms, camera=camera)


def parse_message(
    prefix: str, topic: str, payload: bytes, received_ms: int, max_bytes: int = MAX_PAYLOAD_BYTES
) -> StoredResult | StatusUpdate | Rejected:
    where = split_topic(prefix, topic)
    if where is None:
        return make_rejected(topic, payload, received_ms, "unexpected topic")
    device_id, kind = where
    try:
        storable_string(device_id, "device id in the topic", MAX_KEY_CHARS)
    except PayloadError as exc:
        return make_rejected(topic, payload, received_ms, str(exc))
    if kind == RESULT:
        return parse_result(topic, device_id, payload, received_ms, max_bytes)
    return parse_status(topic, device_id, payload, received_ms)
