"""Rollbacks that reach offline bins, and manifests that expire (issue 29, items 4, 5, 6), with a
real Mosquitto with the shipped configuration (a user per actor), real daemons, the real CLI and
a real aggregator: a rollback supersedes the retained install for a bin that was offline, so it
never installs the rolled-back model; a second rollback sends nothing; an older signed manifest
handed to a bin that missed updates (a freeze) has expired and is refused, while the aggregator
keeps re-signing the current one."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from ecolens.core.classifier import file_sha256
from ecolens.core.rollout import load_public_key, verify
from ecolens.core.wire import manifest_topic
from ecolens.fleet.storage import open_database

from tests.support.aggregator_process import start_aggregator
from tests.support.daemon_helpers import Recorder
from tests.support.model_variants import variant
from tests.test_rollout import BASE, V1, V2, States, ecolens, publish, push_flags, start_bin


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    assert ecolens("rollout", "keygen", "--out", str(tmp_path / "keys")).returncode == 0
    return tmp_path / "keys" / "rollout.key", (tmp_path / "keys" / "rollout.pub").read_text().strip()


def test_a_rollback_reaches_an_offline_bin_and_a_second_one_sends_nothing(
    tmp_path, fleet_broker, reference_model, keys
):
    key, public = keys
    database = tmp_path / "fleet.db"
    open_database(f"sqlite:///{database}").close()
    bad = variant(reference_model, tmp_path / "bad.tflite", V1, one_class=True)
    states = States(fleet_broker)
    push = push_flags(fleet_broker, key, database)
    one = start_bin(tmp_path, fleet_broker.url_for("bin-01"), reference_model, "bin-01", public)
    two = start_bin(tmp_path, fleet_broker.url_for("bin-02"), reference_model, "bin-02", public)
    try:
        for name in ("bin-01", "bin-02"):
            states.wait_for(name, lambda s: s["running"]["version"] == BASE)
        two.send_signal(signal.SIGTERM)
        assert two.wait(30) == 0  # offline during the rollout and its rollback
        proc = ecolens("rollout", str(bad), "--devices", "bin-01,bin-02", *push)
        assert proc.returncode == 0, proc.stderr
        states.wait_for("bin-01", lambda s: s["running"]["version"] == V1)
        proc = ecolens("rollout", "rollback", "--devices", "bin-01,bin-02", *push)
        assert proc.returncode == 0, proc.stderr
        assert f"bin-01 (revokes {V1}" in proc.stdout and f"bin-02 (revokes {V1}" in proc.stdout, proc.stdout
        states.wait_for("bin-01", lambda s: s["last_event"]["event"] == "rolled_back")
        assert states.last("bin-01")["running"]["version"] == BASE

        again = ecolens("rollout", "rollback", "--devices", "bin-01,bin-02", *push)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines() == [
            f"{name}: model {file_sha256(bad)[:12]} ({V1}) is already rolled back; nothing sent"
            for name in ("bin-01", "bin-02")
        ], again.stdout

        since = len(states.recorder.on("ecolens/bin-02/result"))
        two = start_bin(tmp_path, fleet_broker.url_for("bin-02"), reference_model, "bin-02", public)
        came_back = states.wait_for("bin-02", lambda s: (s["last_event"] or {}).get("event") == "revoked")
        assert came_back["running"]["version"] == BASE
        assert states.recorder.wait(lambda: len(states.versions_after("bin-02", since)) >= 3, 60)
        assert set(states.versions_after("bin-02", since)) == {BASE}  # never a result from the bad model
        log = (tmp_path / "bin-02" / "daemon.log").read_text()
        assert "fetching model" not in log and "Traceback" not in log
    finally:
        for process in (one, two):
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        states.recorder.close()


def test_an_expired_manifest_is_refused_and_the_aggregator_keeps_the_current_one_fresh(
    tmp_path, fleet_broker, reference_model, keys
):
    """The freeze: offline while A then B were pushed, the bin is handed A again. A stopped being
    re-signed when B was pushed, so A has expired: refused, reported, one line; B, re-signed by the
    aggregator while current, is installed and kept across a restart."""
    key, public = keys
    database = tmp_path / "fleet.db"
    open_database(f"sqlite:///{database}").close()
    config = tmp_path / "fleet.toml"
    config.write_text("[rollout]\nmanifest_ttl_s = 4\n")
    ttl = {"ECOLENS_ROLLOUT__MANIFEST_TTL_S": "4"}
    first = variant(reference_model, tmp_path / "a.tflite", V1)
    second = variant(reference_model, tmp_path / "b.tflite", V2)
    topic = manifest_topic("ecolens", "bin-01")
    as_aggregator, as_bin = fleet_broker.url_for("ecolens-aggregator"), fleet_broker.url_for("bin-01")
    manifests = Recorder(fleet_broker.port, [topic], "manifest-recorder", fleet_broker.observer())
    states = States(fleet_broker)
    push = [
        "--devices",
        "bin-01",
        "--broker",
        fleet_broker.url_for("ecolens-rollout"),
        "--key",
        str(key),
        "--database",
        f"sqlite:///{database}",
    ]
    public_key = load_public_key(public)
    processes = []
    try:
        assert ecolens("rollout", str(first), *push, **ttl).returncode == 0
        assert manifests.wait(lambda: len(manifests.on(topic)) == 1, 10)
        stale = manifests.on(topic)[0]
        assert ecolens("rollout", str(second), *push, **ttl).returncode == 0
        assert manifests.wait(lambda: len(manifests.on(topic)) == 2, 10)
        current = verify(manifests.on(topic)[1], public_key)

        # The aggregator re-signs B (same serial, later expiry) while it is current.
        log = tmp_path / "aggregate.log"
        aggregator = start_aggregator(log, as_aggregator, database, key, "--no-http", "--config", str(config))
        processes.append(aggregator)
        assert manifests.wait(lambda: len(manifests.on(topic)) >= 3, 20), log.read_text()
        resigned = verify(manifests.on(topic)[-1], public_key)
        assert resigned.serial == current.serial and resigned.expires_ms > current.expires_ms
        aggregator.send_signal(signal.SIGTERM)
        assert aggregator.wait(30) == 0

        # Any broker user retains the old A; once it expired, the bin refuses it.
        expires = verify(stale, public_key).expires_ms
        assert manifests.wait(lambda: time.time() * 1000 > expires + 200, 10)
        publish(fleet_broker, topic, stale)
        skew = {"ECOLENS_ROLLOUT__MAX_CLOCK_SKEW_S": "0"}
        processes.append(start_bin(tmp_path, as_bin, reference_model, "bin-01", public, **skew))
        states.refused("bin-01", 0, "expired manifest", timeout=60)
        assert states.last("bin-01")["running"]["version"] == BASE
        daemon_log = (tmp_path / "bin-01" / "daemon.log").read_text()
        assert sum("expired manifest" in line for line in daemon_log.splitlines()) == 1, daemon_log
        assert "Traceback" not in daemon_log

        # The aggregator is back: B is due, re-signed and published, and installed.
        processes.append(
            start_aggregator(log, as_aggregator, database, key, "--no-http", "--config", str(config))
        )
        states.wait_for("bin-01", lambda s: s["running"]["version"] == V2, timeout=60)
        processes[1].send_signal(signal.SIGTERM)
        assert processes[1].wait(30) == 0
        n = states.count("bin-01")
        processes[1] = start_bin(tmp_path, as_bin, reference_model, "bin-01", public, **skew)
        assert states.recorder.wait(lambda: states.count("bin-01") > n, 60)
        assert states.last("bin-01")["running"]["version"] == V2
        assert all(
            json.loads(m)["running"]["version"] != V1
            for m in states.recorder.on("ecolens/bin-01/model/state")
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
        manifests.close()
        states.recorder.close()
