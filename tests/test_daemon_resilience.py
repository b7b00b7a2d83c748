"""The daemon as a real process: broker outage, kill -9, last will. Nothing queued is lost."""

from __future__ import annotations

import signal
import sqlite3
import time
from contextlib import closing
from datetime import datetime, timezone

import pytest
from ecolens.bench.postgres import wait_until

from tests.support.daemon_helpers import Recorder, clip_manifest, clip_path, daemon_process, status_word
from tests.support.tcpproxy import FreezingProxy

RESULT = "ecolens/bin-r/result"
STATUS = "ecolens/bin-r/status"


def args(tmp_path, mosquitto, model, speed: float, *extra: str) -> list[str]:
    return [
        "--source",
        str(clip_path()),
        "--speed",
        str(speed),
        "--model",
        str(model),
        "--broker",
        mosquitto.url,
        "--device-id",
        "bin-r",
        "--store",
        str(tmp_path / "queue.sqlite3"),
        *extra,
    ]


def queued_event_ids(path) -> list[str]:
    """Read the daemon's queue as it is on disk (read-only)."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return [row[0] for row in db.execute("SELECT event_id FROM queue ORDER BY id")]
        except sqlite3.OperationalError:  # created but no table yet
            return []


def test_broker_outage_mid_stream_loses_no_result(tmp_path, mosquitto, reference_model):
    recorder = Recorder(mosquitto.port, [RESULT, STATUS], client_id="outage-recorder")
    log = tmp_path / "daemon.log"
    env = {"ECOLENS_SERVICE__DRAIN_TIMEOUT_S": "30", "ECOLENS_MQTT__RECONNECT_MAX_S": "1"}
    daemon = daemon_process(args(tmp_path, mosquitto, reference_model, 3.0), log, **env)
    try:
        assert recorder.wait(lambda: len(recorder.results(RESULT)) >= 1, 30), log.read_text()
        mosquitto.stop()
        queue = tmp_path / "queue.sqlite3"
        # items keep coming while the broker is down: waited for on disk, not by the clock
        assert wait_until(lambda: len(queued_event_ids(queue)) >= 2, timeout=60), log.read_text()
        late = set(queued_event_ids(queue))
        back_at = datetime.now(timezone.utc)
        mosquitto.start()  # on the same port (bench.mosquitto.restartable_port)
        assert daemon.wait(60) == 0, log.read_text()
        expected = [item["label"] for item in clip_manifest()["items"]]
        assert recorder.wait(lambda: len(recorder.results(RESULT)) >= len(expected), 20)
        results = list(recorder.results(RESULT).values())
        assert sorted(r["label"] for r in results) == sorted(expected)
        assert len(results) == len(expected)
        # published after the broker came back, each keeps the time its item was seen
        published_late = [r for r in results if r["event_id"] in late]
        assert len(published_late) == len(late)
        for result in published_late:
            seen = datetime.fromisoformat(result["timestamp"].replace("Z", "+00:00"))
            assert seen < back_at, (result["timestamp"], back_at)
        assert "lost connection" in log.read_text()
        assert queued_event_ids(tmp_path / "queue.sqlite3") == []
    finally:
        daemon.kill()
        recorder.close()


@pytest.mark.parametrize("synchronous", ["background", "full", "normal"])
def test_results_queued_before_kill_9_arrive_after_restart(tmp_path, mosquitto, reference_model, synchronous):
    """Every durability mode keeps what was committed when the process is killed."""
    mosquitto.stop()  # results can only be queued
    store = tmp_path / "queue.sqlite3"
    log = tmp_path / "daemon.log"
    env = {"ECOLENS_SERVICE__DRAIN_TIMEOUT_S": "60", "ECOLENS_STORE__SYNCHRONOUS": synchronous}
    first = daemon_process(args(tmp_path, mosquitto, reference_model, 0), log, **env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(queued_event_ids(store)) < 10:
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    queued = queued_event_ids(store)
    assert len(queued) == 10, log.read_text()

    mosquitto.start()
    recorder = Recorder(mosquitto.port, [RESULT], client_id="kill-recorder")
    second = daemon_process(args(tmp_path, mosquitto, reference_model, 0), log, **env)
    try:
        assert second.wait(60) == 0, log.read_text()
        assert recorder.wait(lambda: set(queued) <= set(recorder.results(RESULT)), 10)
        assert len(recorder.results(RESULT)) == 20  # the 10 queued + the 10 of the second run
        assert queued_event_ids(store) == []
    finally:
        second.kill()
        recorder.close()


def test_status_goes_offline_through_the_last_will_when_the_daemon_dies(tmp_path, mosquitto, reference_model):
    recorder = Recorder(mosquitto.port, [STATUS], client_id="will-recorder")
    log = tmp_path / "daemon.log"
    daemon = daemon_process(args(tmp_path, mosquitto, reference_model, 1.0, "--loop"), log)
    try:
        assert recorder.wait(lambda: [status_word(p) for p in recorder.on(STATUS)[-1:]] == ["online"], 30), (
            log.read_text()
        )
        daemon.send_signal(signal.SIGKILL)
        assert recorder.wait(lambda: recorder.on(STATUS)[-1:] == [b"offline"], 10)
    finally:
        daemon.kill()
        recorder.close()


def test_sigterm_stops_cleanly_with_offline_status(tmp_path, mosquitto, reference_model):
    recorder = Recorder(mosquitto.port, [STATUS], client_id="term-recorder")
    log = tmp_path / "daemon.log"
    daemon = daemon_process(args(tmp_path, mosquitto, reference_model, 1.0, "--loop"), log)
    try:
        assert recorder.wait(lambda: [status_word(p) for p in recorder.on(STATUS)[-1:]] == ["online"], 30), (
            log.read_text()
        )
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        assert recorder.wait(lambda: recorder.on(STATUS)[-1:] == [b"offline"], 5)
        assert '"event": "stopped"' in log.read_text()
    finally:
        daemon.kill()
        recorder.close()


def test_a_half_open_network_cut_is_found_by_keepalive_and_loses_nothing(
    tmp_path, mosquitto, reference_model
):
    """The network goes silent without closing anything (no FIN, no RST): only keepalive can
    tell. The daemon drops the dead connection, reconnects through the (working) route, and
    every result, queued meanwhile, arrives once."""
    proxy = FreezingProxy(mosquitto.port)
    recorder = Recorder(mosquitto.port, [RESULT], client_id="half-open-recorder")
    log = tmp_path / "daemon.log"
    env = {
        "ECOLENS_MQTT__PORT": str(proxy.port),
        "ECOLENS_MQTT__KEEPALIVE": "5",  # the smallest allowed: a dead link is found in ~2 x 5 s
        "ECOLENS_MQTT__RECONNECT_MAX_S": "1",
        "ECOLENS_SERVICE__DRAIN_TIMEOUT_S": "30",
    }
    argv = args(tmp_path, mosquitto, reference_model, 1.0)
    argv[argv.index("--broker") : argv.index("--broker") + 2] = []  # the port comes from the env
    daemon = daemon_process(argv, log, **env)
    try:
        assert recorder.wait(lambda: len(recorder.results(RESULT)) >= 1, 60), log.read_text()
        assert proxy.connections == 1
        proxy.freeze()
        assert wait_until(lambda: "lost connection" in log.read_text(), timeout=60), log.read_text()
        assert wait_until(lambda: proxy.connections >= 2, timeout=30), log.read_text()
        assert daemon.wait(90) == 0, log.read_text()
        expected = [item["label"] for item in clip_manifest()["items"]]
        assert recorder.wait(lambda: len(recorder.results(RESULT)) >= len(expected), 30), log.read_text()
        results = list(recorder.results(RESULT).values())
        assert sorted(r["label"] for r in results) == sorted(expected)
        assert queued_event_ids(tmp_path / "queue.sqlite3") == []
    finally:
        daemon.kill()
        recorder.close()
        proxy.close()
