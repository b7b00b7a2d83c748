"""The queue and the MQTT link live without the camera (issue 11): a bin whose camera is gone
at start still delivers what it had queued, says ``camera: "down"`` in its retained status
(and to Home Assistant), and keeps retrying the camera; when the camera comes, it says ``up``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from ecolens.bench.postgres import wait_until
from ecolens.core.contract import make_result
from ecolens.edge.daemon.store import ResultQueue

from tests.support.daemon_helpers import Recorder, clip_path, daemon_process
from tests.support.mjpeg import MjpegCamera, camera_port, clip_frames
from tests.test_fleet_ingest import aggregator, stored_event_ids

MODEL = {"name": "m", "version": "1", "sha256": "c" * 64}
STATUS = "ecolens/bin-c/status"
RESULT = "ecolens/bin-c/result"


def queue_results(path, count: int) -> list[str]:
    """Results left in the on-disk queue by an earlier run (e.g. before a broker outage)."""
    store = ResultQueue(path)
    ids = []
    for n in range(count):
        result = make_result(("a", "b"), (0.2, 0.8), MODEL, 5.0, device_id="bin-c", event_id=f"left-{n}")
        store.put_result(result, RESULT, 1)
        ids.append(result["event_id"])
    store.close()
    return ids


def fleet_report(url: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "report", "--database", url, "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def statuses(recorder: Recorder) -> list[dict]:
    return [json.loads(p) for p in recorder.on(STATUS) if p.startswith(b"{")]


def camera_args(tmp_path, mosquitto, model, source: str) -> list[str]:
    return [
        "--source", source, "--model", str(model), "--broker", mosquitto.url,
        "--device-id", "bin-c", "--store", str(tmp_path / "queue.sqlite3"),
    ]  # fmt: skip


CAMERA_ENV = {
    "ECOLENS_SOURCE__OPEN_ATTEMPTS": "2",
    "ECOLENS_SOURCE__REOPEN_MIN_S": "0.2",
    "ECOLENS_SOURCE__REOPEN_MAX_S": "0.5",
    "ECOLENS_HOMEASSISTANT__ENABLED": "true",
}


def test_camera_gone_at_start_queue_is_delivered_and_camera_down_published(
    tmp_path, mosquitto, reference_model
):
    queued = queue_results(tmp_path / "queue.sqlite3", 30)
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    agg = aggregator(mosquitto, url, "agg-camera").start()  # the fleet sees it too
    recorder = Recorder(mosquitto.port, ["ecolens/bin-c/#", "homeassistant/#"], client_id="cam-recorder")
    log = tmp_path / "daemon.log"
    daemon = daemon_process(
        camera_args(tmp_path, mosquitto, reference_model, "/dev/video97"), log, **CAMERA_ENV
    )
    try:
        assert recorder.wait(lambda: len(recorder.results(RESULT)) == 30, 60), log.read_text()[-3000:]
        down = lambda: [s for s in statuses(recorder) if s["camera"] == "down"]  # noqa: E731
        assert recorder.wait(lambda: bool(down()), 30), log.read_text()[-3000:]
        assert daemon.poll() is None  # still running, still trying the camera
        attempts_before = log.read_text().count("cannot open camera /dev/video97")
        assert recorder.wait(
            lambda: log.read_text().count("cannot open camera /dev/video97") >= attempts_before + 2, 20
        ), "the camera is not retried"
        assert wait_until(lambda: len(stored_event_ids(url)) == 30, timeout=30)
        report = fleet_report(url)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, log.read_text()[-3000:]
    finally:
        daemon.kill()
        recorder.close()
        agg.stop()
    seen = [(s["device_id"], s["state"], s["camera"]) for s in report["status"]]
    assert seen == [("bin-c", "online", "down")]
    assert report["totals"]["camera_down"] == 1 and report["missing"] == {}
    assert list(recorder.results(RESULT)) == queued
    # numbered by the queue, in order, without gaps
    assert [r["seq"] for r in recorder.results(RESULT).values()] == list(range(1, 31))
    status = down()[-1]
    assert status["status"] == "online" and "/dev/video97" in status["camera_error"]
    assert recorder.on(STATUS)[-1] == b"offline"
    problem = [
        json.loads(p)
        for t, p, _ in recorder.messages
        if t == "homeassistant/binary_sensor/ecolens_bin-c/camera/config"
    ]
    assert problem and problem[-1]["device_class"] == "problem" and problem[-1]["state_topic"] == STATUS
    assert "Traceback" not in log.read_text()


def test_a_camera_that_comes_later_is_reported_up(tmp_path, mosquitto, reference_model):
    """A stream camera that is off at start and switched on later: down, then up, frames read."""
    camera = MjpegCamera(clip_frames(clip_path(), limit=30), camera_port())
    recorder = Recorder(mosquitto.port, [STATUS], client_id="cam-recorder-2")
    log = tmp_path / "daemon.log"
    daemon = daemon_process(camera_args(tmp_path, mosquitto, reference_model, camera.url), log, **CAMERA_ENV)
    try:
        assert recorder.wait(lambda: any(s["camera"] == "down" for s in statuses(recorder)), 60), (
            log.read_text()
        )
        camera.start()
        assert recorder.wait(lambda: statuses(recorder)[-1]["camera"] == "up", 30), log.read_text()[-3000:]
        assert recorder.wait(lambda: camera.connections >= 1, 10)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.kill()
        camera.stop()
        recorder.close()
    assert statuses(recorder)[-1]["camera_error"] is None


def test_a_reload_applies_while_the_camera_is_down(tmp_path, mosquitto, reference_model):
    """SIGHUP and a changed model file are applied while the daemon waits for its camera,
    not only once frames flow."""
    model = tmp_path / "model.tflite"
    model.write_bytes(reference_model.read_bytes())
    recorder = Recorder(mosquitto.port, [STATUS], client_id="cam-recorder-3")
    log = tmp_path / "daemon.log"
    env = {**CAMERA_ENV, "ECOLENS_SERVICE__WATCH_INTERVAL_S": "0.5"}
    daemon = daemon_process(camera_args(tmp_path, mosquitto, model, "/dev/video96"), log, **env)
    reloads = lambda: log.read_text().count('"event": "reloaded"')  # noqa: E731
    try:
        assert recorder.wait(lambda: any(s["camera"] == "down" for s in statuses(recorder)), 60), (
            log.read_text()[-3000:]
        )
        assert reloads() == 0
        daemon.send_signal(signal.SIGHUP)
        assert recorder.wait(lambda: reloads() == 1, 20), log.read_text()[-3000:]
        model.write_bytes(reference_model.read_bytes() + b"\0" * 16)  # a new file, still a model
        assert recorder.wait(lambda: reloads() == 2, 20), log.read_text()[-3000:]
        assert daemon.poll() is None and statuses(recorder)[-1]["camera"] == "down"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, log.read_text()[-3000:]
    finally:
        daemon.kill()
        recorder.close()
    assert "Traceback" not in log.read_text()
