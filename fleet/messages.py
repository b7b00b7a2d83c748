"""Turns one received MQTT message into what storage keeps: a result, a status change, or a
rejection with its reason. Never raises on bad input: a bin cannot crash the aggregator."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ecolens.core.contract import validate_result
from ecolens.core.topics import RESULT, split_topic
from ecolens.fleet.storage.store import Rejected, StatusUpdate, StoredResult

STATUSES = ("online", "offline")
MAX_KEPT_PAYLOAD = 4096  # bytes of a rejected payload kept for inspection


def parse_timestamp_ms(text: str) -> int:
    """Contract timestamps are RFC 3339 UTC with 'Z' (already checked by the schema)."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _reject(topic: str, payload: bytes, received_ms: int, reason: str) -> Rejected:
    text = payload[:MAX_KEPT_PAYLOAD].decode("utf-8", errors="replace")
    return Rejected(received_ms=received_ms, topic=topic, reason=reason, payload=text)


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


def parse_result(topic: str, device_id: str, payload: bytes, received_ms: int) -> StoredResult | Rejected:
    try:
        result = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        return _reject(topic, payload, received_ms, f"not JSON: {exc}")
    reason = _validation_reason(result)
    if reason:
        return _reject(topic, payload, received_ms, reason)
    if result.get("device_id", device_id) != device_id:
        return _reject(topic, payload, received_ms, f"device_id {result['device_id']!r} does not match topic")
    if "event_id" not in result:
        return _reject(topic, payload, received_ms, "no event_id: cannot be de-duplicated")
    if result["label"] not in result["scores"]:
        return _reject(topic, payload, received_ms, "label is not one of scores")
    model = result["model"]
    return StoredResult(
        event_id=result["event_id"],
        device_id=device_id,
        seen_ms=parse_timestamp_ms(result["timestamp"]),
        received_ms=received_ms,
        label=result["label"],
        confidence=float(result["confidence"]),
        uncertain=bool(result["uncertain"]),
        inference_ms=float(result["inference_ms"]),
        frames=result.get("frames"),
        model_name=model["name"],
        model_version=model["version"],
        model_sha256=model["sha256"],
        payload=payload.decode("utf-8"),
    )


def parse_status(topic: str, device_id: str, payload: bytes, received_ms: int) -> StatusUpdate | Rejected:
    """``online`` / ``offline`` as plain text, or a JSON object with a ``status`` key."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return _reject(topic, payload, received_ms, "status is not UTF-8 text")
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("status", ""))
        except (ValueError, AttributeError):
            return _reject(topic, payload, received_ms, "status is not valid JSON")
    if text.lower() not in STATUSES:
        return _reject(topic, payload, received_ms, "status must be online or offline")
    return StatusUpdate(device_id=device_id, status=text.lower(), at_ms=received_ms)


def parse_message(
    prefix: str, topic: str, payload: bytes, received_ms: int
) -> StoredResult | StatusUpdate | Rejected:
    where = split_topic(prefix, topic)
    if where is None:
        return _reject(topic, payload, received_ms, "unexpected topic")
    device_id, kind = where
    if kind == RESULT:
        return parse_result(topic, device_id, payload, received_ms)
    return parse_status(topic, device_id, payload, received_ms)
