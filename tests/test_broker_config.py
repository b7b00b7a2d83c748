"""The shipped broker configuration (systemd/mosquitto), installed by its own script into a
scratch /etc/mosquitto and run by a real Mosquitto: a bin cannot publish as another bin, the
aggregator reads all, anonymous clients are refused, and a stopped aggregator's queue holds
more than Mosquitto's default 1000 results across a broker restart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
from ecolens.bench.postgres import wait_until
from ecolens.core.classifier import file_sha256
from ecolens.core.contract import make_result
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.config import SubscriberSection
from ecolens.fleet.storage import open_database
from ecolens.fleet.subscriber import Aggregator

from tests.support.shipped_broker import PASSWORDS, REPO, ShippedBroker
from tests.test_fleet_ingest import LABELS, MODEL, stored_event_ids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root (chgrp mosquitto)")


@pytest.fixture
def broker(tmp_path):
    shipped = ShippedBroker(tmp_path / "broker")
    installed = shipped.install()
    assert installed.returncode == 0, installed.stderr
    assert "warning" not in installed.stderr
    shipped.start()
    try:
        yield shipped
    finally:
        shipped.stop()


def result(device: str, event_id: str) -> bytes:
    return json.dumps(
        make_result(LABELS, (0.2, 0.8), MODEL, 5.0, device_id=device, event_id=event_id)
    ).encode()


def the_aggregator(broker: ShippedBroker, url: str) -> Aggregator:
    open_database(url).close()
    settings = BrokerSection(
        host="127.0.0.1",
        port=broker.plain_port,
        username="ecolens-aggregator",
        password=PASSWORDS["ecolens-aggregator"],
    )
    return Aggregator(
        settings, SubscriberSection(), lambda: open_database(url, migrate=False), client_id="agg-acl"
    )


def test_a_bin_cannot_publish_as_another_bin(broker, tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    agg = the_aggregator(broker, url).start()
    bin_one, reason = broker.client("bin-1", PASSWORDS["bin-1"])
    try:
        assert not reason.is_failure
        for topic, payload in [
            ("ecolens/bin-2/result", result("bin-2", "spoofed")),  # another bin's result
            ("ecolens/bin-2/status", b"offline"),  # taking another bin offline
            ("ecolens/bin-1/result", result("bin-1", "own")),
        ]:
            bin_one.publish(topic, payload, qos=1).wait_for_publish(10)
        assert wait_until(lambda: stored_event_ids(url) == ["own"], timeout=20)
        time.sleep(1)  # the spoofed messages would have arrived with it
        stats = agg.stats.snapshot()
    finally:
        bin_one.disconnect()
        bin_one.loop_stop()
        agg.stop()
    assert stored_event_ids(url) == ["own"]
    assert stats["received"] == 1 and stats["statuses"] == 0
    log = (broker.root / "mosquitto.log").read_text()
    assert "Denied PUBLISH from" in log and "ecolens/bin-2/result" in log


def test_anonymous_and_wrong_passwords_are_refused(broker):
    for user, password in ((None, None), ("bin-1", "wrong")):
        client, reason = broker.client(user, password)
        client.loop_stop()
        assert reason.is_failure and reason.value in (134, 135)  # bad credentials / not authorized


def test_a_stopped_aggregator_gets_more_than_1000_results_across_a_broker_restart(broker, tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    the_aggregator(broker, url).start().stop()  # its persistent session now exists
    bin_one, _ = broker.client("bin-1", PASSWORDS["bin-1"])
    try:
        infos = [
            bin_one.publish("ecolens/bin-1/result", result("bin-1", f"r-{n}"), qos=1) for n in range(2500)
        ]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        bin_one.disconnect()
        bin_one.loop_stop()
    broker.stop()  # persistence: the queue is saved at exit and loaded at start
    broker.start()
    agg = the_aggregator(broker, url).start()
    try:
        assert wait_until(lambda: len(stored_event_ids(url)) == 2500, timeout=60)
    finally:
        agg.stop()


def test_rollout_topics_only_the_rollout_user_may_write(broker):
    """A bin reads its own manifest and the shared chunks; only ecolens-rollout writes chunks and
    other bins' manifests (a bin's own manifest is below its own id: the signature guards it)."""
    received: list[tuple[str, bytes]] = []
    bin_one, _ = broker.client("bin-1", PASSWORDS["bin-1"])
    bin_two, _ = broker.client("bin-2", PASSWORDS["bin-2"])
    rollout, reason = broker.client("ecolens-rollout", PASSWORDS["ecolens-rollout"])
    assert not reason.is_failure
    try:
        bin_one.on_message = lambda c, u, m: received.append((m.topic, m.payload))
        subacks: list[int] = []
        bin_one.on_subscribe = lambda *args: subacks.append(1)
        for topic in ("ecolens/bin-1/model/manifest", "ecolens/models/#", "ecolens/bin-2/model/manifest"):
            bin_one.subscribe(topic, qos=1)
        # subscribed for sure before anything is published: "nothing arrived" then means refused
        assert wait_until(lambda: len(subacks) == 3, timeout=10)
        bin_two.publish("ecolens/bin-1/model/manifest", b"from bin-2", qos=1).wait_for_publish(10)
        bin_two.publish("ecolens/models/abc/0", b"chunk from bin-2", qos=1).wait_for_publish(10)
        rollout.publish("ecolens/bin-2/model/manifest", b"for bin-2", qos=1).wait_for_publish(10)
        rollout.publish("ecolens/models/abc/0", b"chunk", qos=1, retain=True).wait_for_publish(10)
        rollout.publish("ecolens/bin-1/model/manifest", b"signed", qos=1, retain=True).wait_for_publish(10)
        # the last message published: what bin-2 got through, if anything, was routed before it
        assert wait_until(lambda: ("ecolens/bin-1/model/manifest", b"signed") in received, timeout=10)
    finally:
        for client in (bin_one, bin_two, rollout):
            client.disconnect()
            client.loop_stop()
    assert sorted(received) == [
        ("ecolens/bin-1/model/manifest", b"signed"),
        ("ecolens/models/abc/0", b"chunk"),
    ]


def test_a_model_chunk_fits_the_shipped_packet_limit():
    """The shipped max_packet_size admits a full chunk with its MQTT 5 header and longest topic
    (at 262144 Mosquitto dropped every rollout's connection: "oversize packet")."""
    from ecolens.core.rollout import CHUNK_BYTES, MAX_CHUNKS
    from ecolens.core.wire import chunk_topic

    conf = (REPO / "systemd" / "mosquitto" / "ecolens.conf").read_text()
    (limit,) = [int(line.split()[1]) for line in conf.splitlines() if line.startswith("max_packet_size ")]
    topic = chunk_topic("ecolens", "f" * 64, MAX_CHUNKS - 1)
    header = 1 + 4 + 2 + len(topic) + 2 + 16  # type, length, topic, packet id, properties
    assert CHUNK_BYTES + header <= limit <= CHUNK_BYTES + 16 * 1024


def test_a_rollout_goes_through_the_shipped_broker(broker, tmp_path, reference_model):
    """A real `ecolens rollout` as ecolens-rollout and a real daemon as bin-1 over TLS, through the
    installed config: the 5 MB model's 256 KiB chunks arrive and the bin installs it."""
    import signal
    import sys

    from tests.support.daemon_helpers import clip_path, daemon_process
    from tests.support.model_variants import later_version, shipped_version, variant

    subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "rollout", "keygen", "--out", str(tmp_path / "k")], check=True
    )
    public = (tmp_path / "k" / "rollout.pub").read_text().strip()
    newer = variant(reference_model, tmp_path / "newer.tflite", later_version(shipped_version()))
    states: list[dict] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="state-watcher")
    watcher.username_pw_set("ecolens-aggregator", PASSWORDS["ecolens-aggregator"])
    watcher.on_message = lambda c, u, m: states.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", broker.plain_port)
    watcher.subscribe("ecolens/bin-1/model/state", qos=1)
    watcher.loop_start()
    daemon = daemon_process(
        ["--source", str(clip_path()), "--loop", "--model", str(reference_model), "--device-id", "bin-1",
         "--broker", f"mqtts://bin-1:{PASSWORDS['bin-1']}@127.0.0.1:{broker.tls_port}",
         "--store", str(tmp_path / "q.sqlite3")],
        tmp_path / "daemon.log",
        ECOLENS_MQTT__CA_FILE=str(broker.ca_file),
        ECOLENS_ROLLOUT__PUBLIC_KEY=public,
        ECOLENS_ROLLOUT__DIR=str(tmp_path / "models"),
        ECOLENS_AUDIT__ENABLED="false",
    )  # fmt: skip
    try:
        assert wait_until(lambda: bool(states), timeout=60), (tmp_path / "daemon.log").read_text()[-2000:]
        proc = subprocess.run(
            [sys.executable, "-m", "ecolens.cli", "rollout", str(newer), "--devices", "bin-1", "--key",
             str(tmp_path / "k" / "rollout.key"), "--broker",
             f"mqtt://ecolens-rollout:{PASSWORDS['ecolens-rollout']}@127.0.0.1:{broker.plain_port}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "21 chunks" in proc.stdout, proc.stdout
        assert wait_until(lambda: states[-1]["running"]["sha256"] == file_sha256(newer), timeout=60), states[
            -1
        ]
        assert states[-1]["last_event"]["event"] == "installed"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        watcher.loop_stop()
        watcher.disconnect()
    log = (broker.root / "mosquitto.log").read_text()
    assert "oversize" not in log
    # One connection per bin (results, status, stats and the rollout's manifest and chunks): the
    # broker binds the id to the user, so a second one would have taken this one over.
    assert len(re.findall(r"New client connected from \S+ as bin-1 ", log)) == 1, log[-3000:]
    assert "Client bin-1 already connected" not in log
