"""The fleet server's side of a signed rollout: publish a model as retained chunks and one
signed manifest per bin, read every bin's running model, and judge a canary against the rest
of the fleet (the aggregator applies the judgement: fleet/canary.py).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecolens.core.classifier import file_sha256
from ecolens.core.contract import utc_timestamp
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import read_metadata
from ecolens.core.mqtt import BrokerSection, make_client
from ecolens.core.rollout import (
    CHUNK_BYTES,
    Manifest,
    chunk_topic,
    manifest_topic,
    sign,
    state_topic,
)
from ecolens.fleet.payload import PayloadError, decode_payload, printable

PUBLISH_TIMEOUT_S = 60.0


class Connection:
    """One short-lived MQTT connection for a rollout command."""

    def __init__(self, broker: BrokerSection, name: str) -> None:
        self.client = make_client(broker, f"ecolens-rollout-{name}-{uuid.uuid4().hex[:8]}")
        self.connected = threading.Event()
        self.client.on_connect = lambda *_: self.connected.set()
        try:
            self.client.connect(broker.host, broker.port, keepalive=broker.keepalive)
        except OSError as exc:
            raise EcoLensError(f"cannot connect to the broker at {broker.host}:{broker.port}: {exc}") from exc
        self.client.loop_start()
        if not self.connected.wait(10):
            self.close()
            raise EcoLensError(f"the broker at {broker.host}:{broker.port} did not accept the connection")

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(PUBLISH_TIMEOUT_S)
        if not info.is_published():
            raise EcoLensError(f"the broker did not acknowledge {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def new_serial() -> int:
    """Strictly increasing across rollouts from this server (milliseconds since the epoch)."""
    return time.time_ns() // 1_000_000


def publish_signed(
    connection: Connection,
    prefix: str,
    devices: Iterable[str],
    private_key: Any,
    manifest_for: Callable[[str], Manifest],
) -> list[Manifest]:
    """One signed, retained manifest per bin: what installs and rollbacks both send."""
    manifests = []
    for device in devices:
        manifest = manifest_for(device)
        connection.publish(manifest_topic(prefix, device), sign(manifest, private_key))
        manifests.append(manifest)
    return manifests


def publish_model(
    broker: BrokerSection, prefix: str, model: Path, devices: Iterable[str], private_key: Any
) -> list[Manifest]:
    """Chunks once (retained, shared by every bin), then one signed manifest per bin."""
    metadata = read_metadata(model)  # refuses a file the bins could not load anyway
    data = model.read_bytes()
    sha256 = file_sha256(model)
    chunks = max(1, math.ceil(len(data) / CHUNK_BYTES))
    serial, rollout_id, issued = new_serial(), uuid.uuid4().hex[:12], utc_timestamp()
    connection = Connection(broker, "push")
    try:
        for index in range(chunks):
            part = data[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES]
            connection.publish(chunk_topic(prefix, sha256, index), part)
        return publish_signed(
            connection,
            prefix,
            devices,
            private_key,
            lambda device: Manifest(
                device_id=device,
                serial=serial,
                action="install",
                name=metadata.name,
                version=metadata.version,
                sha256=sha256,
                size=len(data),
                chunks=chunks,
                chunk_bytes=CHUNK_BYTES,
                fetch=chunk_topic(prefix, sha256, "").rstrip("/"),
                issued=issued,
                rollout_id=rollout_id,
            ),
        )
    finally:
        connection.close()


def publish_rollback(
    broker: BrokerSection,
    prefix: str,
    states: dict[str, dict[str, Any]],
    devices: Iterable[str],
    private_key: Any,
) -> list[Manifest]:
    """Tell each bin to go back to the previous model it kept (named by its reported state)."""
    serial, rollout_id, issued = new_serial(), uuid.uuid4().hex[:12], utc_timestamp()
    devices = list(devices)
    for device in devices:
        if not (states.get(device) or {}).get("previous"):
            raise EcoLensError(f"{device} reports no previous model to roll back to")
    connection = Connection(broker, "rollback")
    try:
        return publish_signed(
            connection,
            prefix,
            devices,
            private_key,
            lambda device: Manifest(
                device_id=device,
                serial=serial,
                action="rollback",
                name=str((states[device].get("running") or {}).get("name", "")),
                version=str(states[device]["previous"]["version"]),
                sha256=str(states[device]["previous"]["sha256"]),
                size=0,
                chunks=0,
                chunk_bytes=CHUNK_BYTES,
                fetch="",
                issued=issued,
                rollout_id=rollout_id,
            ),
        )
    finally:
        connection.close()


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


def collect_states(broker: BrokerSection, prefix: str, wait_s: float = 1.5) -> dict[str, dict[str, Any]]:
    """Every bin's retained model state (running model, previous model, last rollout event)."""
    states: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def on_message(client, userdata, message) -> None:
        body = well_formed_state(prefix, message.topic, message.payload)
        if body is not None:
            with lock:
                states[body["device_id"]] = body

    connection = Connection(broker, "status")
    try:
        connection.client.on_message = on_message
        connection.client.subscribe(state_topic(prefix, "+"), qos=1)
        time.sleep(wait_s)
    finally:
        connection.close()
    return dict(sorted(states.items()))


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


# --- canary judgement -----------------------------------------------------------------------------------


@dataclass
class GroupFigures:
    """What one group of bins did during the window."""

    results: int = 0
    uncertain: int = 0
    plastic: int = 0
    errors: int = 0  # times a bin of the group went offline (a crash, a kill, a lost broker, a stop)
    devices: set[str] = field(default_factory=set)

    def add_many(self, device: str, label: str, uncertain: bool, count: int) -> None:
        self.results += count
        self.uncertain += count if uncertain else 0
        self.plastic += count if label == "plastic" else 0
        self.devices.add(device)

    @property
    def outcomes(self) -> int:
        """Results plus errors: a bin that crashes before it answers still counts towards a
        comparison of errors."""
        return self.results + self.errors

    def rate(self, count: int) -> float:
        return count / self.results if self.results else 0.0

    def error_rate(self) -> float:
        return self.errors / self.outcomes if self.outcomes else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "bins": sorted(self.devices),
            "uncertain_rate": round(self.rate(self.uncertain), 3),
            "plastic_share": round(self.rate(self.plastic), 3),
            "errors": self.errors,
            "error_rate": round(self.error_rate(), 3),
        }


@dataclass
class CanaryVerdict:
    healthy: bool
    reasons: list[str]
    canary: dict[str, Any]
    rest: dict[str, Any]
    conclusive: bool = True  # False: too few results was the only reason (no judgement yet)


def judge(
    canary: GroupFigures,
    rest: GroupFigures,
    *,
    min_results: int,
    max_share_delta: float,
    max_uncertain_delta: float,
    max_error_delta: float,
    silent_canaries: list[str],
) -> CanaryVerdict:
    """The canary is worse when it answers a different share of plastic than the rest of the
    fleet (beyond what chance allows over the window), is uncertain more often, fails more
    often, or went silent. Errors are compared once both groups have enough results plus
    errors, so a canary that keeps crashing is judged before it answers ``min_results`` times."""
    reasons = []
    if silent_canaries:
        reasons.append(f"no results from {', '.join(silent_canaries)}")
    compared = canary.results >= min_results and rest.results >= min_results
    if compared:
        delta = abs(canary.rate(canary.plastic) - rest.rate(rest.plastic))
        if delta > max_share_delta:
            reasons.append(f"plastic share differs from the rest by {delta:.2f} (> {max_share_delta:.2f})")
        worse = canary.rate(canary.uncertain) - rest.rate(rest.uncertain)
        if worse > max_uncertain_delta:
            reasons.append(f"uncertain rate above the rest by {worse:.2f} (> {max_uncertain_delta:.2f})")
    if canary.outcomes >= min_results and rest.outcomes >= min_results:
        worse = canary.error_rate() - rest.error_rate()
        if worse > max_error_delta:
            reasons.append(
                f"error rate above the rest by {worse:.2f} (> {max_error_delta:.2f}; "
                f"canary offline {canary.errors} times)"
            )
    if not compared and not reasons:
        reasons.append(f"too few results to compare (canary {canary.results}, rest {rest.results})")
        return CanaryVerdict(False, reasons, canary.summary(), rest.summary(), conclusive=False)
    return CanaryVerdict(not reasons, reasons, canary.summary(), rest.summary())
