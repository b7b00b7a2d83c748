"""Turns one received MQTT message into what storage keeps: a result, a status change, or a
rejection with its reason. Never raises on bad input: a bin cannot crash the aggregator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ecolens.core.contract import CONTRACT_MAJOR, contract_major, validate_result
from ecolens.core.wire import CAMERA_STATES, RESULT, STATUSES, RejectionKind, split_topic
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

MAX_KEPT_PAYLOAD = 4096  # bytes of a rejected payload kept for inspection


def parse_timestamp_ms(text: str) -> int:
    """Contract timestamps are RFC 3339 UTC with 'Z' (the schema checked the pattern; the
    date itself may still be impossible: year 0, second 60, February 30)."""
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"timestamp {text[:40]!r} is not a real time: {exc}") from None


def make_rejected(topic: str, payload: bytes, received_ms: int, reason: str, kind: RejectionKind) -> Rejected:
    """What is kept of a refused message: every field storable whatever the bytes were."""
    text = payload[:MAX_KEPT_PAYLOAD].decode("utf-8", errors="replace")
    return Rejected(
        received_ms=received_ms,
        topic=storable_text(topic, 1024),
        reason=storable_text(reason, 1024),
        payload=storable_text(text, MAX_KEPT_PAYLOAD),
        kind=kind.value,
    )


def _validation_reason(result: Any) -> PayloadError | None:
    import jsonschema

    if not isinstance(result, dict):
        return PayloadError("not a JSON object", RejectionKind.NOT_JSON)
    major = contract_major(result)
    if major is not None and major != CONTRACT_MAJOR:
        version = str(result["contract_version"])[:20]
        return PayloadError(
            f"contract_version {version} is not readable here (this aggregator reads "
            f"{CONTRACT_MAJOR}.x): upgrade the aggregator",
            RejectionKind.CONTRACT_VERSION,
        )
    try:
        validate_result(result)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return PayloadError(f"breaks the result contract at {where}: {exc.message}", RejectionKind.CONTRACT)
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
        return make_rejected(topic, payload, received_ms, str(exc), exc.kind)
    invalid = _validation_reason(result)
    if invalid:
        return make_rejected(topic, payload, received_ms, str(invalid), invalid.kind)
    if result.get("device_id", device_id) != device_id:
        mismatch = f"device_id {result['device_id']!r} does not match topic"
        return make_rejected(topic, payload, received_ms, mismatch, RejectionKind.DEVICE_MISMATCH)
    if "event_id" not in result:
        reason = "no event_id: cannot be de-duplicated"
        return make_rejected(topic, payload, received_ms, reason, RejectionKind.NO_EVENT_ID)
    if result["label"] not in result["scores"]:
        reason = "label is not one of scores"
        return make_rejected(topic, payload, received_ms, reason, RejectionKind.LABEL_NOT_IN_SCORES)
    if result.get("frames", 1) > INT_MAX:
        reason = f"frames {result['frames']} is out of range"
        return make_rejected(topic, payload, received_ms, reason, RejectionKind.CONTRACT)
    try:
        seen_ms = parse_timestamp_ms(result["timestamp"])
    except PayloadError as exc:
        return make_rejected(topic, payload, received_ms, str(exc), exc.kind)
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


MAX_CAMERA_ERROR = 300  # characters of a camera's error kept (a device path and an errno)


def _camera_details(value: dict[str, Any]) -> tuple[str | None, str | None, int | None]:
    """(camera state, its error, since when) from a JSON status; whatever is malformed is
    left out, never a reason to refuse the status itself."""
    camera = value.get("camera") if value.get("camera") in CAMERA_STATES else None
    error = value.get("camera_error")
    error = storable_text(error, MAX_CAMERA_ERROR) if isinstance(error, str) and camera else None
    since = value.get("camera_since")
    try:
        since_ms = parse_timestamp_ms(since) if isinstance(since, str) and camera else None
    except PayloadError:
        since_ms = None
    return camera, error, since_ms


def parse_status(topic: str, device_id: str, payload: bytes, received_ms: int) -> StatusUpdate | Rejected:
    """``online`` / ``offline`` as plain text, or a JSON object with a ``status`` key (and the
    camera's state, error and since, as the daemon sends them)."""
    camera, camera_error, camera_since = None, None, None
    try:
        text, value = payload.decode("utf-8").strip(), None
        if text.startswith("{"):
            _, value = decode_payload(payload, MAX_KEPT_PAYLOAD)
            if not isinstance(value, dict):
                raise PayloadError("not a JSON object", RejectionKind.NOT_JSON)
            text = str(value.get("status", ""))
            camera, camera_error, camera_since = _camera_details(value)
    except UnicodeDecodeError:
        return make_rejected(topic, payload, received_ms, "status is not UTF-8 text", RejectionKind.NOT_JSON)
    except PayloadError as exc:
        reason = f"status is not valid JSON: {exc}"
        return make_rejected(topic, payload, received_ms, reason, RejectionKind.NOT_JSON)
    if text.lower() not in STATUSES:
        reason = "status must be online or offline"
        return make_rejected(topic, payload, received_ms, reason, RejectionKind.BAD_STATUS)
    return StatusUpdate(device_id, text.lower(), received_ms, camera, camera_error, camera_since)


def parse_message(
    prefix: str, topic: str, payload: bytes, received_ms: int, max_bytes: int = MAX_PAYLOAD_BYTES
) -> StoredResult | StatusUpdate | Rejected:
    where = split_topic(prefix, topic)
    if where is None:
        return make_rejected(topic, payload, received_ms, "unexpected topic", RejectionKind.UNEXPECTED_TOPIC)
    device_id, kind = where
    try:
        storable_string(device_id, "device id in the topic", MAX_KEY_CHARS)
    except PayloadError as exc:
        return make_rejected(topic, payload, received_ms, str(exc), exc.kind)
    if kind == RESULT:
        return parse_result(topic, device_id, payload, received_ms, max_bytes)
    return parse_status(topic, device_id, payload, received_ms)
