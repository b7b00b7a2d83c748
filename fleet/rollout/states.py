"""Every bin's model state as the rollout commands read it: checked (anyone on the broker may
retain a message there), the canaries picked from it, and printed."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from ecolens.core.errors import EcoLensError
from ecolens.core.wire import state_topic
from ecolens.fleet.payload import PayloadError, decode_payload, printable


def _strings(value: Any, keys: tuple[str, ...]) -> bool:
    """A JSON object whose ``keys``, where present and not null, are strings."""
    return isinstance(value, dict) and all(isinstance(value.get(k) or "", str) for k in keys)


def well_formed_state(prefix: str, topic: str, payload: bytes) -> dict[str, Any] | None:
    """A state as a daemon reports it (edge/daemon/rollout.py), from the bin its topic names;
    None for anything else. Anyone who may publish there can retain a message: a malformed one
    must not break `rollout status`, canary picking or a rollback (the payload checks are the
    result messages', fleet/payload.py)."""
    try:
        _, body = decode_payload(payload)
    except PayloadError:
        return None
    device = body.get("device_id") if isinstance(body, dict) else None
    if not isinstance(device, str) or topic != state_topic(prefix, device):
        return None
    previous, event = body.get("previous"), body.get("last_event")
    if not _strings(body.get("running"), ("name", "version", "sha256")):
        return None
    if previous is not None and not (_strings(previous, ("version", "sha256")) and previous.get("sha256")):
        return None
    if event is not None and not _strings(event, ("event", "reason")):
        return None
    return body


def pick_canaries(devices: list[str], percent: float, sha256: str) -> list[str]:
    """ceil(percent) of the bins, at least one, chosen by a hash of (model, bin): stable for a
    given model, different bins for different models."""
    if not devices:
        raise EcoLensError("no bins report a model state: is rollout enabled on them?")
    count = max(1, math.ceil(len(devices) * percent / 100.0))
    return sorted(devices, key=lambda d: hashlib.sha256(f"{sha256}/{d}".encode()).hexdigest())[:count]


def format_states(states: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'bin':<16}{'model':<28}{'version':<10}{'sha256':<14}last event"]
    for device, state in states.items():
        running = state.get("running") or {}
        event = state.get("last_event") or {}
        described = printable(event.get("event", "-"))
        if event.get("reason"):
            described += f" ({printable(event['reason'])})"
        lines.append(
            f"{printable(device):<16}{printable(running.get('name', '?')):<28}"
            f"{printable(running.get('version', '?')):<10}"
            f"{printable(running.get('sha256', ''))[:12]:<14}{described}"
        )
    return "\n".join(lines)
