"""The daemon in-process on the sample clip, the real model and a real Mosquitto."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import paho.mqtt.publish as publish
from ecolens.core.contract import validate_result
from ecolens.edge.daemon.app import Daemon
from ecolens.edge.daemon.config import load_daemon_config

from tests.support.daemon_helpers import Recorder, clip_manifest, clip_path
from tests.support.toml_files import write_toml


def daemon_config(tmp_path: Path, broker, source: str, model: Path, **extra):
    overrides = {
        "source.uri": source,
        "source.speed": 0,
        "model.path": str(model),
        "mqtt.port": broker.port,
        "publish.device_id": "bin-test",
        "publish.stats_interval_s": 0.2,
        "store.path": str(tmp_path / "queue.sqlite3"),
        "service.drain_timeout_s": 10,
        **extra,
    }
    return load_daemon_config(None, overrides, environ={})


def test_clip_yields_one_schema_valid_result_per_item_with_the_right_label(
    tmp_path, mosquitto, reference_model
):
    recorder = Recorder(mosquitto.port, ["ecolens/bin-test/#", "homeassistant/#"])
    config = daemon_config(
        tmp_path,
        mosquitto,
        str(clip_path()),
        reference_model,
        **{"homeassistant.enabled": True, "audit.enabled": True, "audit.dir": str(tmp_path / "a")},
    )
    daemon = Daemon(config)
    daemon.run(install_signals=False)

    expected = [item["label"] for item in clip_manifest()["items"]]
    assert recorder.wait(lambda: len(recorder.results("ecolens/bin-test/result")) >= 10, 10)
    results = list(recorder.results("ecolens/bin-test/result").values())
    assert [r["label"] for r in results] == expected
    for result in results:
        validate_result(result, written=True)
        assert result["frames"] == 3 and result["device_id"] == "bin-test"
        assert result["source"].endswith("items.mp4")
    assert len(list((tmp_path / "a").rglob("*.jpg"))) == len(expected)
    assert recorder.wait(lambda: recorder.on("ecolens/bin-test/status")[-1:] == [b"offline"], 5)
    first = json.loads(recorder.on("ecolens/bin-test/status")[0])
    assert first["status"] == "online" and first["camera"] == "up"
    stats = [json.loads(p) for p in recorder.on("ecolens/bin-test/stats")]
    assert stats and {"fps", "cpu_percent", "rss_mb", "queue_depth", "model_version"} <= set(stats[-1])
    discovery = [t for t, _, _ in recorder.messages if t.endswith("/config")]
    assert "homeassistant/sensor/ecolens_bin-test/label/config" in discovery
    recorder.close()


def test_home_assistant_restart_triggers_a_new_announcement(tmp_path, mosquitto, reference_model):
    images = tmp_path / "images"
    images.mkdir()
    config = daemon_config(
        tmp_path,
        mosquitto,
        str(images),
        reference_model,
        **{"homeassistant.enabled": True, "service.exit_at_end": False},
    )
    shutil.copy(next(Path(clip_path()).parent.parent.glob("eval/*/*.jpg")), images / "a.jpg")
    recorder = Recorder(mosquitto.port, ["homeassistant/sensor/#"])
    daemon = Daemon(config)
    runner = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    runner.start()
    try:
        topic = "homeassistant/sensor/ecolens_bin-test/label/config"
        assert recorder.wait(lambda: len(recorder.on(topic)) >= 1, 10)
        before = len(recorder.on(topic))
        publish.single("homeassistant/status", "online", hostname="127.0.0.1", port=mosquitto.port)
        assert recorder.wait(lambda: len(recorder.on(topic)) > before, 10)
        config_payload = json.loads(recorder.on(topic)[-1])
        assert config_payload["state_topic"] == "ecolens/bin-test/result"
        assert config_payload["availability_topic"] == "ecolens/bin-test/status"
    finally:
        daemon.stop_event.set()
        runner.join(30)
        recorder.close()


def test_bad_new_model_is_refused_and_the_old_one_keeps_running(tmp_path, mosquitto, reference_model):
    model = tmp_path / "model.tflite"
    shutil.copy(reference_model, model)
    config_path = write_toml(
        tmp_path / "edge.toml",
        {
            "model": {"path": str(model)},
            "source": {"uri": str(clip_path()), "speed": 0, "loop": True},
            "mqtt": {"port": mosquitto.port},
            "store": {"path": str(tmp_path / "q.sqlite3")},
        },
    )
    config = load_daemon_config(config_path, environ={})
    daemon = Daemon(config, config_path)
    daemon.start()
    try:
        running = daemon.classifier
        model.write_bytes(b"garbage, not a model")
        assert daemon.reload() is False
        assert daemon.classifier is running
        shutil.copy(reference_model, model)
        config_path.write_text(config_path.read_text() + "[detect]\nframes_per_item = 2\n")
        assert daemon.reload() is True
        assert daemon.classifier is not running
        assert daemon.pipeline.detect.frames_per_item == 2
    finally:
        daemon.stop_event.set()
        daemon.shutdown()
