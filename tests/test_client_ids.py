"""Client-id squatting against the shipped broker configuration: a bin's credentials used to
connect, again and again, under every id the aggregator's session ever had (the old predictable
`ecolens-aggregator-<hostname>` and `ecolens-samples`, the random id it keeps, and its user name)
take nothing over: the broker makes a client's id its user name (`use_username_as_clientid`), and
the aggregator keeps one connection for results, samples and canary rollbacks. A bin's results and
samples stay complete; the aggregator is never disconnected. The kept id survives a restart (the
same session on brokers configured otherwise), and no topic a broker user can read carries it."""

from __future__ import annotations

import json
import os
import re
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

from tests.support.shipped_broker import PASSWORDS, ShippedBroker
from tests.test_broker_config import result
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


def sample(event_id: str) -> bytes:
    """A bin's sample message (the daemon's format): its result and a small real JPEG."""
    from tests.test_samples_hostile import message

    return message(event_id=event_id)


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
    assert list(kept) == ["aggregator"] and len(kept["aggregator"]) >= 32 + len("ecolens-aggregator-")

    watcher, answers = tls_client(broker, "bin-2", "bin-2-watcher")  # reads all it may read
    seen: list[bytes] = []
    watcher.on_message = lambda c, u, m: seen.append(m.topic.encode() + b" " + m.payload)
    assert wait_until(lambda: bool(answers), timeout=10)
    watcher.subscribe([("#", 1), ("$SYS/#", 0)])

    stop = threading.Event()
    old_ids = [f"ecolens-aggregator-{socket.gethostname()}", "ecolens-samples", kept["aggregator"]]
    old_ids.append("ecolens-aggregator")  # the id the broker gives the aggregator
    squatted: list[int] = []
    squatter = threading.Thread(target=lambda: squatted.append(squat(broker, old_ids, 25, stop)))
    bin_one, _ = broker.client("bin-1", PASSWORDS["bin-1"])
    squatter.start()
    try:
        for n in range(33):
            bin_one.publish("ecolens/bin-1/result", result("bin-1", f"r-{n:02d}"), qos=1).wait_for_publish(10)
            if n % 11 == 0:  # a sample on the same aggregator connection
                bin_one.publish("ecolens/bin-1/sample", sample(f"r-{n:02d}"), qos=1).wait_for_publish(10)
            time.sleep(0.05)
        squatter.join(timeout=120)
        assert wait_until(lambda: len(stored_event_ids(url)) >= 33, timeout=30)
        assert wait_until(lambda: service.samples.stored == 3, timeout=30), service.samples.rejected
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
    log = (broker.root / "mosquitto.log").read_text()
    kicks = [line for line in log.splitlines() if "already connected" in line]
    assert kicks and all("Client bin-2 already connected" in line for line in kicks), kicks[:5]
    # Two starts, one connection each: results, samples and canary share it.
    assert len(re.findall(r"New client connected from \S+ as ecolens-aggregator ", log)) == 2


def test_canary_rollbacks_go_out_on_the_aggregators_one_connection(shipped_broker, tmp_path, monkeypatch):
    """The aggregator's canary signs a rollback for bin-1 and publishes it on the aggregator's
    own session through the shipped ACL (ecolens-aggregator may write manifests): bin-1 reads
    it, signed by the key, and the aggregator never needed, nor lost, a second connection."""
    from ecolens.core.rollout import generate_keypair, load_private_key, load_public_key, verify
    from ecolens.fleet.rollout.publish import ModelRef, publish_rollback

    broker = shipped_broker
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    pem, public = generate_keypair()
    service = fleet(broker, tmp_path)
    got: list[bytes] = []
    bin_one, _ = broker.client("bin-1", PASSWORDS["bin-1"])
    bin_one.on_message = lambda c, u, m: got.append(m.payload)
    bin_one.subscribe("ecolens/bin-1/model/manifest", qos=1)
    try:
        model = ModelRef("b" * 64, "bad", "9.9.9")
        manifests = publish_rollback(
            service.shared_connection, "ecolens", {"bin-1": model}, load_private_key(pem), 3600
        )
        assert wait_until(lambda: bool(got), timeout=20)
        assert service.aggregator.stats.snapshot()["connected"]
    finally:
        bin_one.disconnect()
        bin_one.loop_stop()
        service.stop()
    received = verify(got[-1], load_public_key(public))
    assert received == manifests[0] and received.action == "rollback" and received.sha256 == "b" * 64
    log = (broker.root / "mosquitto.log").read_text()
    assert len(re.findall(r"New client connected from \S+ as ecolens-aggregator ", log)) == 1
    assert "Client ecolens-aggregator already connected" not in log
    assert "Denied PUBLISH from ecolens-aggregator" not in log
