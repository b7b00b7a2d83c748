"""The bins' MQTT topics, ``<prefix>/<device_id>/<leaf>``, and the one rule for what a prefix
and a device id may contain (the daemon publishes and the fleet subscribes by the same rule)."""

from __future__ import annotations

RESULT = "result"
STATUS = "status"
STATS = "stats"


def check_level(value: str) -> str:
    """One topic level: no '/', no wildcards, no NUL, and no leading '$' (reserved: $SYS, $share)."""
    if not value or value.startswith("$") or any(c in value for c in "/+#\x00"):
        raise ValueError("must be one topic level without '/', '+', '#' or a leading '$'")
    return value


def check_prefix(value: str) -> str:
    """One or more topic levels, each as ``check_level`` wants."""
    for part in value.split("/"):
        check_level(part)
    return value


def device_topic(prefix: str, device_id: str, leaf: str) -> str:
    return f"{prefix}/{device_id}/{leaf}"


def result_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, RESULT)


def status_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, STATUS)


def subscriptions(prefix: str, share_group: str | None) -> list[str]:
    """Results are shared between the group's aggregators; status is subscribed by every
    aggregator without sharing, because brokers never send retained messages to a shared
    subscription (MQTT 5, 4.8.2) and status is retained."""
    results = f"{prefix}/+/{RESULT}"
    if share_group:
        results = f"$share/{share_group}/{results}"
    return [results, f"{prefix}/+/{STATUS}"]


def split_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``ecolens/bin-7/result`` -> ("bin-7", "result"); None for anything else."""
    parts = topic.split("/")
    prefix_parts = prefix.split("/")
    if len(parts) != len(prefix_parts) + 2 or parts[: len(prefix_parts)] != prefix_parts:
        return None
    device_id, kind = parts[-2], parts[-1]
    if not device_id or kind not in (RESULT, STATUS):
        return None
    return device_id, kind
