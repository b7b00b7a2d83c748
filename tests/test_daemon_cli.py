"""`ecolens run` and `ecolens demo` as real processes: one clear error per bad input, and the
demo end to end on the sample clip. Plus the systemd unit checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from ecolens.bench.mosquitto import MosquittoBroker

from tests.support import systemd
from tests.support.daemon_helpers import REPO, clip_manifest, clip_path

UNIT = REPO / "systemd" / "ecolens-edge.service"


def ecolens(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=REPO,
    )


def error_lines(process: subprocess.CompletedProcess) -> list[str]:
    return [line for line in process.stderr.splitlines() if line.startswith("ecolens run: error")]


def test_missing_model_is_one_clear_error(tmp_path):
    done = ecolens("run", "--model", str(tmp_path / "none.tflite"), "--store", str(tmp_path / "q"))
    assert done.returncode == 2
    assert error_lines(done) == [f"ecolens run: error: model file not found: {tmp_path}/none.tflite"]
    assert "Traceback" not in done.stderr


def test_model_without_metadata_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    done = ecolens("run", "--model", str(bad), "--store", str(tmp_path / "q"))
    assert done.returncode == 2
    assert len(error_lines(done)) == 1 and "carries no EcoLens metadata" in done.stderr


def test_bad_config_is_one_clear_error(tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("[mqtt]\nport = 99999\n[detect]\nsensitivity = 3\n")
    done = ecolens("run", "--config", str(config), "--validate-config")
    assert done.returncode == 2
    [line] = error_lines(done)
    assert "mqtt.port" in line and "detect.sensitivity: unknown setting" in line


def test_video_file_that_does_not_exist_is_one_clear_error(tmp_path, reference_model):
    """Files and folders fail at start; a missing live camera is retried for ever instead
    (tests/test_daemon_camera.py)."""
    done = ecolens(
        "run", "--source", str(tmp_path / "missing.mp4"), "--model", str(reference_model),
        "--store", str(tmp_path / "q.sqlite3"),
    )  # fmt: skip
    assert done.returncode == 2
    assert error_lines(done) == [f"ecolens run: error: video file not found: {tmp_path / 'missing.mp4'}"]


def test_unreachable_broker_keeps_results_queued_and_backs_off_while_draining(tmp_path, reference_model):
    """Nothing listens on the broker port: every item is classified and kept in the queue, and
    the stop drains with backoff instead of a busy loop of connects (94,050 error lines in
    10 s before the fix)."""
    from ecolens.bench.mosquitto import free_port

    done = ecolens(
        "run",
        "--source",
        str(clip_path()),
        "--model",
        str(reference_model),
        "--store",
        str(tmp_path / "q.sqlite3"),
        "--broker",
        f"mqtt://127.0.0.1:{free_port()}",
        ECOLENS_SOURCE__SPEED="0",
        ECOLENS_SERVICE__DRAIN_TIMEOUT_S="3",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    results = [e for e in events if e.get("event") == "result"]
    assert len(results) == len(clip_manifest()["items"])
    refused = [e for e in events if e.get("event") == "mqtt_connect"]
    assert 1 <= len(refused) <= 12, f"{len(refused)} connect attempts"
    assert "refused (is the broker running" in refused[0]["message"]
    assert any(f"stopping with {len(results)} results queued" in e["message"] for e in events)


def test_validate_config_prints_effective_settings_without_the_password(tmp_path, reference_model):
    config = tmp_path / "edge.toml"
    config.write_text(f'[model]\npath = "{reference_model}"\n[mqtt]\npassword = "hunter2"\n')
    done = ecolens(
        "run",
        "--config",
        str(config),
        "--validate-config",
        "--broker",
        "mqtts://bin:pw@broker.lan",
        ECOLENS_PUBLISH__DEVICE_ID="bin-9",
    )
    assert done.returncode == 0, done.stderr
    assert "configuration OK" in done.stderr and "hunter2" not in done.stdout
    settings = json.loads(done.stdout)
    assert settings["mqtt"]["host"] == "broker.lan" and settings["mqtt"]["port"] == 8883
    assert settings["publish"]["device_id"] == "bin-9"


@pytest.mark.parametrize("broker_flag", [[], ["--embedded-broker"]], ids=["mosquitto", "amqtt"])
def test_demo_prints_every_result_of_the_clip_and_exits(broker_flag):
    if broker_flag:
        pytest.importorskip("amqtt")
    done = ecolens("demo", "--speed", "0", *broker_flag)
    assert done.returncode == 0, done.stderr
    expected = [i["label"] for i in clip_manifest()["items"]]
    # One readable line per result, no JSON and nothing on stderr (no native INFO, no broker ERROR).
    lines = re.findall(r"^#(\d+) +\S+ +(\S+) +[\d.]+% +3 frames", done.stdout, flags=re.M)
    assert [label for _, label in lines] == expected, done.stdout
    assert not any(line.startswith("{") for line in done.stdout.splitlines())
    assert done.stderr == "", done.stderr
    assert "(amqtt)" in done.stdout if broker_flag else "(mosquitto)" in done.stdout
    assert f"done: {len(expected)} results" in done.stdout
    assert str(clip_path()) in done.stdout
    if not broker_flag:
        as_json = ecolens("demo", "--speed", "0", "--json")
        results = [json.loads(line) for line in as_json.stdout.splitlines()]
        assert [r["label"] for r in results] == expected


def test_demo_subscribes_with_the_brokers_credentials(tmp_path):
    """The demo's printer connects like the daemon does: a broker that refuses anonymous clients
    used to get the daemon's results but never show them."""
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "demo", "s3cret-pw"], check=True)
    passwords.chmod(0o600)
    broker = MosquittoBroker(
        tmp_path / "broker", allow_anonymous=False, extra_config=[f"password_file {passwords}"]
    ).start()
    try:
        url = f"mqtt://demo:s3cret-pw@127.0.0.1:{broker.port}"
        done = ecolens("demo", "--speed", "0", "--json", "--broker", url)
    finally:
        broker.stop()
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(clip_manifest()["items"])


def test_unit_passes_systemd_analyze_verify(tmp_path):
    systemd.verify(UNIT, tmp_path)


def test_unit_exposure_is_2_or_lower():
    assert systemd.exposure(UNIT) <= 2.0
