"""The aggregator against a real Mosquitto and real databases: exactly-once storage with
shared subscriptions, nothing lost across stops and crashes, bad messages survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime

import paho.mqtt.client as mqtt
from ecolens.bench.postgres import wait_until
from ecolens.core.contract import make_result
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.config import SubscriberSection
from ecolens.fleet.simulator import FleetSimulator
from ecolens.fleet.storage import open_database
from ecolens.fleet.subscriber import Aggregator

MODEL = {"name": "ecolens-plastic-lite0", "version": "1.0", "sha256": "b" * 64}
LABELS = ("non_plastic", "plastic")


def broker_of(mosquitto) -> BrokerSection:
    return BrokerSection(host=mosquitto.host, port=mosquitto.port)


def aggregator(mosquitto, url: str, client_id: str, **settings) -> Aggregator:
    open_database(url).close()
    return Aggregator(
        broker_of(mosquitto),
        SubscriberSection(**settings),
        lambda: open_database(url, migrate=False),
        client_id=client_id,
    )


def simulate(mosquitto, count: int, bins: int = 10, seed: int = 1, **run):
    simulator = FleetSimulator(
        broker_of(mosquitto), bins=bins, seed=seed, labels=LABELS, model_info=MODEL
    ).connect()
    try:
        return simulator.run(count=count, rate=0, **run)
    finally:
        simulator.close(offline=False)


def stored_event_ids(url: str) -> list[str]:
    database = open_database(url, migrate=False)
    try:
        return [row[0] for row in database.query("SELECT event_id FROM results")]
    finally:
        database.close()


def wait_for_count(url: str, expected: int, timeout: float = 60) -> list[str]:
    wait_until(lambda: len(stored_event_ids(url)) >= expected, timeout=timeout, interval=0.2)
    return stored_event_ids(url)


def test_two_aggregators_on_a_shared_subscription_store_every_result_once(mosquitto, database_url):
    first = aggregator(mosquitto, database_url, "agg-1", share_group="fleet").start()
    second = aggregator(mosquitto, database_url, "agg-2", share_group="fleet").start()
    try:
        published = simulate(mosquitto, count=3000, bins=25)
        stored = wait_for_count(database_url, 3000)
        assert first.wait_idle() and second.wait_idle()
    finally:
        first.stop()
        second.stop()
    assert len(stored) == 3000
    assert Counter(stored) == Counter(published.event_ids)  # each one, exactly once
    one, two = first.stats.snapshot(), second.stats.snapshot()
    assert one["stored"] + two["stored"] == 3000
    assert one["stored"] > 500 and two["stored"] > 500  # the broker split the load
    assert one["duplicates"] == two["duplicates"] == 0
    # Status is not shared: both aggregators saw every bin come online.
    assert one["statuses"] == two["statuses"] == 25


def test_a_stopped_aggregator_misses_nothing_published_meanwhile(mosquitto, tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    agg = aggregator(mosquitto, url, "agg-restart").start()
    before = simulate(mosquitto, count=200, seed=1)
    wait_for_count(url, 200)
    agg.stop()
    during = simulate(mosquitto, count=700, seed=2)  # nobody subscribed right now
    assert len(stored_event_ids(url)) == 200
    agg = aggregator(mosquitto, url, "agg-restart").start()  # same id: resumes its session
    try:
        stored = wait_for_count(url, 900)
        agg.wait_idle()
    finally:
        agg.stop()
    assert sorted(stored) == sorted(before.event_ids + during.event_ids)


def test_a_killed_aggregator_process_loses_nothing(mosquitto, tmp_path):
    """SIGKILL between storing and acknowledging: the broker resends, storage de-duplicates."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\nclient_id = "agg-crash"\n'
        f'[storage]\nurl = "{url}"\n[subscriber]\nbatch_size = 50\nbatch_wait_ms = 20\n'
        "[http]\nenabled = false\n"
    )
    command = [sys.executable, "-m", "ecolens.cli", "aggregate", "--config", str(config)]

    log = tmp_path / "aggregate.log"

    def start() -> subprocess.Popen:
        with log.open("w") as stderr:
            process = subprocess.Popen(command, stderr=stderr)
        # connected and subscribed once it prints "aggregating"
        assert wait_until(lambda: "aggregating" in log.read_text(), timeout=30), log.read_text()
        return process

    process = start()
    simulator = FleetSimulator(broker_of(mosquitto), bins=5, seed=3, labels=LABELS, model_info=MODEL)
    simulator.connect()
    try:
        simulator.run(count=300, rate=0)
        assert wait_until(lambda: len(stored_event_ids(url)) >= 100, timeout=30, interval=0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        simulator.run(count=1200, rate=0)  # while it is down
    finally:
        simulator.close(offline=False)
    published = simulator.summary.event_ids
    assert len(published) == 1500
    process = start()
    try:
        stored = wait_for_count(url, 1500)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert Counter(stored) == Counter(published)


def publish_raw(mosquitto, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_malformed_and_duplicate_messages_are_counted_and_survived(mosquitto, tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    good = make_result(LABELS, (0.1, 0.9), MODEL, 20.0, device_id="bin-1", event_id="only-once")
    later = dict(good, event_id="after-the-junk")
    agg = aggregator(mosquitto, url, "agg-junk", batch_wait_ms=0).start()
    try:
        publish_raw(
            mosquitto,
            [
                ("ecolens/bin-1/result", json.dumps(good).encode()),
                ("ecolens/bin-1/result", json.dumps(good).encode()),  # redelivered / resent
                ("ecolens/bin-1/result", b"\x00\xffgarbage"),
                ("ecolens/bin-1/result", json.dumps(dict(good, confidence="high")).encode()),
                ("ecolens/bin-1/status", b"rebooting"),
                ("ecolens/bin-1/result", json.dumps(later).encode()),
            ],
        )
        assert wait_until(lambda: agg.stats.snapshot()["rejected"] == 3, timeout=20)
        assert agg.wait_idle()
        stats = agg.stats.snapshot()
    finally:
        agg.stop()
    assert sorted(stored_event_ids(url)) == ["after-the-junk", "only-once"]
    assert (stats["stored"], stats["duplicates"], stats["rejected"]) == (2, 1, 3)
    database = open_database(url, migrate=False)
    reasons = [row[0] for row in database.query("SELECT reason FROM rejected ORDER BY reason")]
    database.close()
    assert len(reasons) == 3
    assert any("confidence" in r for r in reasons)
    assert any(r.startswith("not UTF-8 text") for r in reasons)
    assert any("online or offline" in r for r in reasons)


def test_report_numbers_match_what_was_published(mosquitto, tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    agg = aggregator(mosquitto, url, "agg-report").start()
    simulator = FleetSimulator(broker_of(mosquitto), bins=6, seed=5, labels=LABELS, model_info=MODEL)
    simulator.connect()
    try:
        summary = simulator.run(count=900, rate=0, backfill_hours=5)
        for bin_ in simulator.bins[:2]:
            simulator.publish_status(bin_.device_id, "offline")
        wait_for_count(url, 900)
        assert agg.wait_idle()
    finally:
        simulator.close(offline=False)
        agg.stop()

    def report(*args: str) -> str:
        command = [sys.executable, "-m", "ecolens.cli", "report", "--database", url, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    data = json.loads(report("--since", "6h", "--format", "json"))
    got = {(b["device_id"], label): n for b in data["bins"] for label, n in b["labels"].items()}
    assert got == dict(summary.by_bin_label)
    assert data["totals"]["items"] == 900
    plastic = sum(n for (_, label), n in summary.by_bin_label.items() if label == "plastic")
    assert data["totals"]["plastic"] == plastic
    assert data["totals"]["plastic_share"] == round(plastic / 900, 4)

    hours = Counter(
        datetime.fromisoformat(ts.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:00:00Z")
        for _, _, _, ts in summary.published
    )
    series = Counter()
    for point in data["series"]:
        series[point["bucket_start"]] += point["items"]
    assert series == hours

    offline = {s["device_id"] for s in data["status"] if s["state"] == "offline"}
    assert offline == {b.device_id for b in simulator.bins[:2]}
    assert data["totals"]["offline"] == 2

    csv_lines = report("bins", "--since", "6h", "--format", "csv").splitlines()
    assert csv_lines[0] == "device_id,items,plastic,other,plastic_share,uncertain"
    first_bin = simulator.bins[0].device_id
    row = next(line.split(",") for line in csv_lines if line.startswith(first_bin))
    assert int(row[2]) == summary.count(first_bin, "plastic")
    assert int(row[3]) == summary.count(first_bin, "non_plastic")

    table = report("status")
    assert first_bin in table and "offline" in table and "2 bins offline" in table
