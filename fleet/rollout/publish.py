"""The fleet server's side of a signed rollout on the broker: publish a model as retained
chunks and one signed manifest per bin (installs and rollbacks), and read every bin's retained
model state."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecolens.core.classifier import file_sha256
from ecolens.core.contract import utc_timestamp
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import read_metadata
from ecolens.core.mqtt import BrokerSection, ConnectFailed
from ecolens.core.mqtt.client import Message, MqttClient
from ecolens.core.rollout import CHUNK_BYTES, Manifest, sign
from ecolens.core.wire import chunk_topic, manifest_topic, model_fetch, state_filter
from ecolens.fleet.rollout.manifest_lock import manifests_locked, write_current
from ecolens.fleet.rollout.states import well_formed_state
from ecolens.fleet.storage.database import Database

PUBLISH_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0


class Connection:
    """One short-lived MQTT connection for a rollout command."""

    def __init__(self, broker: BrokerSection, name: str) -> None:
        self.client = MqttClient(broker, f"ecolens-rollout-{name}-{uuid.uuid4().hex[:8]}")
        try:
            self.client.connect()
        except ConnectFailed as exc:
            raise EcoLensError(
                f"cannot connect to the broker at {broker.host}:{broker.port}: {exc.cause}"
            ) from exc
        self.client.start()
        if not self.client.wait_connected(CONNECT_TIMEOUT_S):
            self.close()
            raise EcoLensError(f"the broker at {broker.host}:{broker.port} did not accept the connection")

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        """QoS 1; returns once the broker acknowledged it (else PublishTimeout)."""
        self.client.publish_acked(topic, payload, retain=retain, timeout=PUBLISH_TIMEOUT_S)

    def close(self) -> None:
        self.client.stop()


class SharedConnection(Connection):
    """A running client's connection lent to a rollout step (the aggregator's canary rollbacks
    and re-signs): the shipped broker binds a client id to its user name, so a second
    connection with the aggregator's credentials would take the aggregator's over."""

    def __init__(self, client: MqttClient) -> None:  # noqa: D107 - no connect: it is running
        self.client = client

    def close(self) -> None:
        """Not ours to close."""


Opener = Callable[[str], Connection]  # a connection for a named step ("rollback", "refresh")


def opener(broker: BrokerSection) -> Opener:
    """A new short-lived connection per step (the `ecolens rollout` commands)."""
    return lambda name: Connection(broker, name)


def new_serial() -> int:
    """Strictly increasing across rollouts from this server (milliseconds since the epoch)."""
    return time.time_ns() // 1_000_000


def publish_signed(
    connection: Connection,
    prefix: str,
    devices: Iterable[str],
    private_key: Any,
    manifest_for: Callable[[str], Manifest],
    database: Database | None = None,
) -> list[Manifest]:
    """One signed, retained manifest per bin: what installs and rollbacks both send. With the
    fleet's ``database``, published and recorded as the bins' current ones under the manifests'
    lock (fleet.rollout.manifest_lock)."""
    manifests = []
    with manifests_locked(database) as tx:
        for device in devices:
            manifest = manifest_for(device)
            connection.publish(manifest_topic(prefix, device), sign(manifest, private_key))
            manifests.append(manifest)
        if tx is not None:
            write_current(tx, manifests)
    return manifests


def expiry_ms(ttl_s: float) -> int:
    return time.time_ns() // 1_000_000 + int(ttl_s * 1000)


@dataclass(frozen=True)
class ModelRef:
    """The model a rollback revokes."""

    sha256: str
    name: str
    version: str


def publish_model(
    broker: BrokerSection,
    prefix: str,
    model: Path,
    devices: Iterable[str],
    private_key: Any,
    ttl_s: float,
    database: Database | None = None,
) -> list[Manifest]:
    """Chunks once (retained, shared by every bin), then one signed manifest per bin (recorded
    in ``database`` as each bin's current one)."""
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
                fetch=model_fetch(prefix, sha256),
                issued=issued,
                rollout_id=rollout_id,
                expires_ms=expiry_ms(ttl_s),
            ),
            database,
        )
    finally:
        connection.close()


def publish_rollback(
    connect: Opener,
    prefix: str,
    models: dict[str, ModelRef],
    private_key: Any,
    ttl_s: float,
    database: Database | None = None,
) -> list[Manifest]:
    """A signed rollback per bin, retained: it revokes the model named for that bin, and
    supersedes the retained install, so a bin that is offline now never installs it either."""
    serial, rollout_id, issued = new_serial(), uuid.uuid4().hex[:12], utc_timestamp()
    connection = connect("rollback")
    try:
        return publish_signed(
            connection,
            prefix,
            list(models),
            private_key,
            lambda device: Manifest(
                device_id=device,
                serial=serial,
                action="rollback",
                name=models[device].name,
                version=models[device].version,
                sha256=models[device].sha256,
                size=0,
                chunks=0,
                chunk_bytes=CHUNK_BYTES,
                fetch="",
                issued=issued,
                rollout_id=rollout_id,
                expires_ms=expiry_ms(ttl_s),
            ),
            database,
        )
    finally:
        connection.close()


def collect_states(broker: BrokerSection, prefix: str, wait_s: float = 1.5) -> dict[str, dict[str, Any]]:
    """Every bin's retained model state (running model, previous model, last rollout event)."""
    states: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def on_message(message: Message) -> None:
        body = well_formed_state(prefix, message.topic, message.payload)
        if body is not None:
            with lock:
                states[body["device_id"]] = body

    connection = Connection(broker, "status")
    try:
        connection.client.route(state_filter(prefix), on_message)
        connection.client.subscribe(state_filter(prefix), qos=1)
        time.sleep(wait_s)
    finally:
        connection.close()
    return dict(sorted(states.items()))
