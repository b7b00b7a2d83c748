"""The daemon's queue on a bad day (issue 11): a full disk, a read-only folder, a file damaged
while running. Real file systems (a small tmpfs mounted by the test, as root), a real
Mosquitto and the real `ecolens run`: one clear line, nothing renamed that is intact, errors in
the MQTT thread retried and reported, a thread that cannot go on stops the process non-zero."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest
from ecolens.bench.postgres import wait_until
from ecolens.core.contract import make_result
from ecolens.core.mqtt import BrokerSection
from ecolens.edge.daemon.config.homeassistant import HomeAssistantSection
from ecolens.edge.daemon.config.publish import PublishSection
from ecolens.edge.daemon.mqtt_link import MqttLink
from ecolens.edge.daemon.stats import DaemonStats
from ecolens.edge.daemon.store import ResultQueue

from tests.support.daemon_helpers import Recorder, clip_path, daemon_process
from tests.support.disks import fill, small_tmpfs

MODEL = {"name": "m", "version": "1", "sha256": "d" * 64}
RESULT = "ecolens/bin-s/result"


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs: a file system that can really fill up."""
    with small_tmpfs(tmp_path / "disk") as mount_point:
        yield mount_point


def queued(path: Path, count: int, padding: int = 0) -> list[str]:
    store = ResultQueue(path)
    ids = []
    for n in range(count):
        result = make_result(
            ("a", "b"), (0.3, 0.7), MODEL, 5.0, device_id="bin-s", event_id=f"q-{n}", source="x" * padding
        )
        store.put_result(result, RESULT, 1)
        ids.append(result["event_id"])
    store.close()  # the last connection checkpoints and removes the WAL
    return ids


def rows(path: Path) -> tuple[str, int]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0], db.execute(
            "SELECT count(*) FROM queue"
        ).fetchone()[0]


def run_once(tmp_path, store: Path, broker_url: str, reference_model) -> subprocess.CompletedProcess:
    args = [
        "run", "--source", str(clip_path()), "--speed", "0", "--model", str(reference_model),
        "--broker", broker_url, "--device-id", "bin-s", "--store", str(store),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args], capture_output=True, text=True, timeout=120,
        env={**env, "ECOLENS_SERVICE__DRAIN_TIMEOUT_S": "2"},
    )  # fmt: skip


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    """What the user reads: everything but the JSON log and LiteRT's own banner."""
    return [
        line
        for line in done.stderr.splitlines()
        if not line.startswith(("{", "INFO: Created TensorFlow Lite"))
    ]


def test_a_full_disk_at_start_is_one_clear_line_and_the_queue_is_kept(
    small_disk, tmp_path, mosquitto, reference_model
):
    store = small_disk / "queue.sqlite3"
    queued(store, 300)
    filler = fill(small_disk)
    done = run_once(tmp_path, store, mosquitto.url, reference_model)
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(error_lines(done)) == 1, done.stderr[-3000:]
    [line] = error_lines(done)
    assert line.startswith(f"ecolens run: error: store.path: cannot use queue {store}")
    assert "free space on the file system" in line
    assert not [p.name for p in small_disk.iterdir() if "corrupt" in p.name]  # nothing renamed
    filler.unlink()
    assert rows(store) == ("ok", 300)


def test_a_read_only_state_folder_is_one_clear_line(small_disk, tmp_path, mosquitto, reference_model):
    store = small_disk / "queue.sqlite3"
    queued(store, 20)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for path in (store, small_disk / "new" / "queue.sqlite3", small_disk / "other.sqlite3"):
        done = run_once(tmp_path, path, mosquitto.url, reference_model)
        assert done.returncode == 2, done.stderr[-2000:]
        [line] = error_lines(done)
        assert line.startswith("ecolens run: error: store.path: cannot ")
        assert "Traceback" not in done.stderr
    assert not [p.name for p in small_disk.iterdir() if "corrupt" in p.name]
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert rows(store) == ("ok", 20)


def test_a_full_disk_while_sending_is_retried_reported_and_recovered(small_disk, mosquitto, caplog):
    """Deletions after PUBACK need room in the WAL: refused while the disk is full, logged,
    counted in stats, retried; once there is room, the queue empties. The thread never dies."""
    store_path = small_disk / "queue.sqlite3"
    ids = queued(store_path, 60)
    store = ResultQueue(store_path)  # a fresh, empty WAL: the first deletion must grow it
    filler = fill(small_disk)
    recorder = Recorder(mosquitto.port, [RESULT], client_id="full-recorder")
    stats = DaemonStats()
    failed = threading.Event()
    link = MqttLink(
        BrokerSection(host=mosquitto.host, port=mosquitto.port, reconnect_min_s=0.1, reconnect_max_s=0.5),
        PublishSection(device_id="bin-s", stats_interval_s=0.5),
        store,
        stats,
        HomeAssistantSection(),
        lambda: MODEL,
        on_failure=failed.set,
    )
    caplog.set_level(logging.INFO)
    link.start()
    try:
        assert recorder.wait(lambda: len(recorder.results(RESULT)) == 60, 30)
        assert wait_until(lambda: stats.store_errors >= 2, timeout=20)
        assert "database or disk is full" in stats.store_error and store.depth() == 60
        assert link.is_alive() and not failed.is_set()
        filler.unlink()
        assert wait_until(lambda: store.depth() == 0, timeout=30)
        assert wait_until(lambda: stats.store_error is None, timeout=10)
    finally:
        link.stop(5)
        store.close()
        recorder.close()
    assert link.failure is None and not failed.is_set()
    assert list(recorder.results(RESULT)) == ids
    messages = [r.getMessage() for r in caplog.records]
    assert any("free space on the file system" in m and "retrying in" in m for m in messages)
    assert any("works again" in m for m in messages)


def test_a_queue_damaged_while_running_stops_the_daemon_non_zero(tmp_path, mosquitto, reference_model):
    """Garbage written into the middle of the queue file under a running daemon: the MQTT
    thread cannot go on, the process exits non-zero with one line; the next start moves the
    damaged file aside (integrity_check fails)."""
    store = tmp_path / "queue.sqlite3"
    queued(store, 3000, padding=1500)  # ~6 MB: more than SQLite's page cache
    mosquitto.stop()
    log = tmp_path / "daemon.log"
    args = [
        "--source", "/dev/video96", "--model", str(reference_model), "--broker", mosquitto.url,
        "--device-id", "bin-s", "--store", str(store),
    ]  # fmt: skip
    daemon = daemon_process(args, log, ECOLENS_PUBLISH__STATS_INTERVAL_S="0.5")
    try:
        assert wait_until(lambda: "mqtt_connect" in log.read_text(), timeout=30), log.read_text()
        size = store.stat().st_size
        with store.open("r+b") as handle:  # table and index pages alike
            handle.seek(size // 4)
            handle.write(os.urandom(size // 2))
        mosquitto.start()
        code = daemon.wait(60)
    finally:
        daemon.kill()
    text = log.read_text()
    assert code == 2, text[-3000:]
    assert (
        "ecolens run: error: the MQTT thread stopped: DatabaseError: database disk image is malformed" in text
    )
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "mqtt_thread_failed" for e in events)

    done = run_once(tmp_path, store, mosquitto.url, reference_model)  # restart: moved aside
    assert any(p.name.startswith("queue.sqlite3.corrupt-") for p in tmp_path.iterdir()), done.stderr[-2000:]
