"""Client-id squatting against the shipped broker configuration: a bin's credentials used to
connect, again and again, under the ids the aggregator's persistent sessions used to have
(`ecolens-aggregator-<hostname>`, `ecolens-samples`) take nothing over, because `ecolens
aggregate` now uses random ids kept in its state folder: a bin's results stay complete. The kept
ids survive a restart (the same sessions), and no topic a broker user can read carries them."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from ecolens.bench.postgres import wait_until
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.client_ids import FILE_NAME
from ecolens.fleet.config import FleetConfig, HttpSection, StorageSection
from ecolens.fleet.service import FleetService

from tests.test_broker_config import PASSWORDS, ShippedBroker, result
from tests.test_fleet_ingest import stored_event_ids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root (chgrp mosquitto)")


@pytest.fixture
def shipped_broker(tmp_path):
    shipped = ShippedBroker(tmp_path / "broker")
    assert shipped.install().returncode == 0
    shipped.start()
    try:
        yield shipped
    finally:
        shipped.stop()


def tls_client(broker: ShippedBroker, user: str, client_id: str) -> tuple[mqtt.Client, list]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, PASSWORDS[user])
    client.tls_set(ca_certs=str(broker.ca_file))
    answers: list = []
    client.on_connect = lambda c, u, f, reason, p: answers.append(reason)
    client.connect("127.0.0.1", broker.tls_port)
    client.loop_start()
    return client, answers


def squat(broker: ShippedBroker, ids: list[str], times: int, stop: threading.Event) -> int:
    """Connect as bin-2 under each id ``times`` times (each connection kicks a holder of that id)."""
    accepted = 0
    for _ in range(times):
        for client_id in ids:
            if stop.is_set():
                return accepted
            client, answers = tls_client(broker, "bin-2", client_id)
            if wait_until(answers.__len__, timeout=5) and not answers[0].is_failure:
                accepted += 1
            client.disconnect()
            client.loop_stop()
    return accepted


def fleet(broker: ShippedBroker, tmp_path) -> FleetService:
    config = FleetConfig(
        mqtt=BrokerSection(
            host="127.0.0.1",
            port=broker.plain_port,
            username="ecolens-aggregator",
            password=PASSWORDS["ecolens-aggregator"],
        ),
        storage=StorageSection(url=f"sqlite:///{tmp_path / 'fleet.db'}"),
        http=HttpSection(enabled=False),
    )
    return FleetService(config, samples_dir=tmp_path / "samples").start()


def test_squatting_the_old_predictable_ids_loses_no_result(shipped_broker, tmp_path, monkeypatch):
    broker = shipped_broker
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    service = fleet(broker, tmp_path)
    kept = json.loads((tmp_path / FILE_NAME).read_text())
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o077 == 0
    service.stop()
    service = fleet(broker, tmp_path)  # a restart finds the same sessions
    assert json.loads((tmp_path / FILE_NAME).read_text()) == kept
    assert all(len(value) >= 32 + len("ecolens-samples-") for value in kept.values())

    watcher, answers = tls_client(broker, "bin-2", "bin-2-watcher")  # reads all it may read
    seen: list[bytes] = []
    watcher.on_message = lambda c, u, m: seen.append(m.topic.encode() + b" " + m.payload)
    assert wait_until(lambda: bool(answers), timeout=10)
    watcher.subscribe([("#", 1), ("$SYS/#", 0)])

    stop = threading.Event()
    old_ids = [f"ecolens-aggregator-{socket.gethostname()}", "ecolens-samples"]
    squatted: list[int] = []
    squatter = threading.Thread(target=lambda: squatted.append(squat(broker, old_ids, 50, stop)))
    bin_one, _ = broker.client("bin-1", PASSWORDS["bin-1"])
    squatter.start()
    try:
        for n in range(33):
            bin_one.publish("ecolens/bin-1/result", result("bin-1", f"r-{n:02d}"), qos=1).wait_for_publish(10)
            time.sleep(0.05)
        squatter.join(timeout=120)
        assert wait_until(lambda: len(stored_event_ids(url)) >= 33, timeout=30)
    finally:
        stop.set()
        squatter.join(timeout=30)
        bin_one.disconnect()
        bin_one.loop_stop()
        watcher.disconnect()
        watcher.loop_stop()
        stats = service.aggregator.stats.snapshot()
        service.stop()
    assert squatted == [100]  # every squatting connection was accepted, and took nothing over
    assert sorted(stored_event_ids(url)) == [f"r-{n:02d}" for n in range(33)]
    assert stats["connected"]
    assert not any(value.encode() in message for message in seen for value in kept.values())
    kicks = [
        line
        for line in (broker.root / "mosquitto.log").read_text().splitlines()
        if "already connected" in line
    ]
    assert not any(value in line for line in kicks for value in kept.values())
