"""Signed, staged rollout with a real Mosquitto, real daemon processes and the real CLI:
a signed model is installed by hot swap and reported; unsigned, tampered, foreign-key,
replayed and older manifests and a model that does not load are refused while the running
model keeps working; a rollback returns to the previous model; a canary answering one class
is rolled back automatically and a healthy one is promoted to every bin."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ecolens.core.classifier import file_sha256
from ecolens.core.rollout import (
    Manifest,
    chunk_topic,
    generate_keypair,
    load_private_key,
    manifest_topic,
    sign,
)

from tests.support.daemon_helpers import Recorder, clip_path, daemon_process
from tests.support.model_variants import later_version, shipped_version, variant

pytest.importorskip("cryptography")

BASE = shipped_version()  # what the reference model runs as
V1, V2, V3 = (later_version(BASE, n) for n in (1, 2, 3))


def ecolens(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    proc = ecolens("rollout", "keygen", "--out", str(tmp_path / "keys"))
    assert proc.returncode == 0, proc.stderr
    key = tmp_path / "keys" / "rollout.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    return key, (tmp_path / "keys" / "rollout.pub").read_text().strip()


def start_bin(tmp_path: Path, broker_url: str, model: Path, device: str, public_key: str) -> subprocess.Popen:
    folder = tmp_path / device
    folder.mkdir(exist_ok=True)
    args = [
        "--source",
        str(clip_path()),
        "--loop",
        "--speed",
        "2",
        "--model",
        str(model),
        "--broker",
        broker_url,
    ]
    args += ["--device-id", device, "--store", str(folder / "queue.sqlite3")]
    return daemon_process(
        args,
        folder / "daemon.log",
        ECOLENS_ROLLOUT__PUBLIC_KEY=public_key,
        ECOLENS_ROLLOUT__DIR=str(folder / "models"),
        ECOLENS_AUDIT__ENABLED="false",
    )


class States:
    """The retained model/state messages of the bins."""

    def __init__(self, port: int) -> None:
        self.recorder = Recorder(
            port, ["ecolens/+/model/state", "ecolens/+/result"], client_id="state-recorder"
        )

    def last(self, device: str) -> dict:
        messages = self.recorder.on(f"ecolens/{device}/model/state")
        return json.loads(messages[-1]) if messages else {}

    def wait_for(self, device: str, predicate, timeout: float = 60) -> dict:
        assert self.recorder.wait(
            lambda: bool(self.last(device)) and predicate(self.last(device)), timeout
        ), self.last(device)
        return self.last(device)

    def refused(self, device: str, count_before: int, fragment: str, timeout: float = 20) -> None:
        def seen() -> bool:
            states = [json.loads(m) for m in self.recorder.on(f"ecolens/{device}/model/state")[count_before:]]
            return any(
                (s.get("last_event") or {}).get("event") == "refused"
                and fragment in s["last_event"]["reason"]
                for s in states
            )

        assert self.recorder.wait(seen, timeout), self.recorder.on(f"ecolens/{device}/model/state")[-1]

    def count(self, device: str) -> int:
        return len(self.recorder.on(f"ecolens/{device}/model/state"))

    def versions_after(self, device: str, since: int) -> list[str]:
        results = [json.loads(p) for p in self.recorder.on(f"ecolens/{device}/result")[since:]]
        return [r["model"]["version"] for r in results]


def publish(port: int, topic: str, payload: bytes) -> None:
    import paho.mqtt.publish as mqtt_publish

    mqtt_publish.single(topic, payload, qos=1, retain=True, hostname="127.0.0.1", port=port)


def manifest_for(model: Path, device: str, serial: int, version: str | None = None) -> Manifest:
    data = model.read_bytes()
    sha = file_sha256(model)
    return Manifest(
        device_id=device,
        serial=serial,
        action="install",
        name="ecolens-plastic-lite0",
        version=version or "9.9.9",
        sha256=sha,
        size=len(data),
        chunks=1,
        chunk_bytes=len(data),
        fetch=chunk_topic("ecolens", sha, "").rstrip("/"),
        issued="2026-01-01T00:00:00Z",
        rollout_id="test",
    )


def test_signed_rollout_installs_refuses_and_rolls_back(tmp_path, mosquitto, reference_model, keys):
    key, public = keys
    newer = variant(reference_model, tmp_path / "v101.tflite", V1)
    states = States(mosquitto.port)
    daemon = start_bin(tmp_path, mosquitto.url, reference_model, "bin-01", public)
    push = ["--broker", mosquitto.url, "--key", str(key)]
    try:
        first = states.wait_for("bin-01", lambda s: s["running"]["version"] == BASE)
        assert first["running"]["sha256"] == file_sha256(reference_model)
        topic = manifest_topic("ecolens", "bin-01")

        # Unsigned, tampered and foreign-key manifests: refused, the running model stays.
        body = manifest_for(newer, "bin-01", 10**15, V1)
        n = states.count("bin-01")
        publish(
            mosquitto.port,
            topic,
            json.dumps({"manifest": base64.b64encode(body.to_bytes()).decode()}).encode(),
        )
        states.refused("bin-01", n, "unsigned")
        envelope = json.loads(sign(body, load_private_key(key.read_bytes())))
        forged = body.to_bytes().replace(f'"{V1}"'.encode(), b'"97.0.0"')
        envelope["manifest"] = base64.b64encode(forged).decode()
        n = states.count("bin-01")
        publish(mosquitto.port, topic, json.dumps(envelope).encode())
        states.refused("bin-01", n, "signature does not verify")
        n = states.count("bin-01")
        other_key = load_private_key(generate_keypair()[0])
        publish(mosquitto.port, topic, sign(body, other_key))
        states.refused("bin-01", n, "signature does not verify")
        assert states.last("bin-01")["running"]["version"] == BASE

        # A signed newer model: fetched in chunks, checked, hot-swapped, reported.
        before = len(states.recorder.on("ecolens/bin-01/result"))
        started = time.monotonic()
        proc = ecolens("rollout", str(newer), "--devices", "bin-01", *push)
        assert proc.returncode == 0, proc.stderr
        installed = states.wait_for("bin-01", lambda s: s["running"]["version"] == V1)
        print(f"\nrollout to one bin: {time.monotonic() - started:.2f} s from command to installed")
        assert installed["running"]["sha256"] == file_sha256(newer)
        assert installed["previous"]["sha256"] == file_sha256(reference_model)
        assert installed["last_event"]["event"] == "installed"
        assert states.recorder.wait(lambda: V1 in states.versions_after("bin-01", before), 30)

        # Older version, replayed serial, a model that does not load: refused, V1 keeps running.
        n = states.count("bin-01")
        proc = ecolens("rollout", str(reference_model), "--devices", "bin-01", *push)
        assert proc.returncode == 0, proc.stderr
        states.refused("bin-01", n, f"not newer than the running {V1}")
        n = states.count("bin-01")
        even_newer = variant(reference_model, tmp_path / "v102.tflite", V2)
        publish(
            mosquitto.port,
            topic,
            sign(manifest_for(even_newer, "bin-01", 5, V2), load_private_key(key.read_bytes())),
        )
        states.refused("bin-01", n, "replayed")
        garbage = tmp_path / "garbage.tflite"
        garbage.write_bytes(b"not a model at all" * 100)
        bad = manifest_for(garbage, "bin-01", int(time.time() * 1000) + 1, V3)
        publish(mosquitto.port, chunk_topic("ecolens", bad.sha256, 0), garbage.read_bytes())
        n = states.count("bin-01")
        publish(mosquitto.port, topic, sign(bad, load_private_key(key.read_bytes())))
        states.refused("bin-01", n, "does not load")
        assert states.last("bin-01")["running"]["version"] == V1
        assert daemon.poll() is None

        # A restart keeps the installed model; a signed rollback returns to the previous one.
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        n = states.count("bin-01")
        daemon = start_bin(tmp_path, mosquitto.url, reference_model, "bin-01", public)
        assert states.recorder.wait(lambda: states.count("bin-01") > n, 60)
        assert states.last("bin-01")["running"]["version"] == V1
        proc = ecolens("rollout", "rollback", "--devices", "bin-01", *push)
        assert proc.returncode == 0, proc.stderr
        back = states.wait_for("bin-01", lambda s: s["running"]["version"] == BASE)
        assert back["running"]["sha256"] == file_sha256(reference_model)
        assert back["last_event"]["event"] == "rolled_back"

        status = ecolens("rollout", "status", "--broker", mosquitto.url)
        assert status.returncode == 0 and "bin-01" in status.stdout and BASE in status.stdout, status.stdout
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        states.recorder.close()


def test_bad_canary_is_rolled_back_and_a_good_one_promoted(tmp_path, mosquitto, reference_model, keys):
    key, public = keys
    one_class = variant(reference_model, tmp_path / "one-class.tflite", V1, one_class=True)
    good = variant(reference_model, tmp_path / "good.tflite", V2)
    states = States(mosquitto.port)
    bins = [
        start_bin(tmp_path, mosquitto.url, reference_model, name, public) for name in ("bin-01", "bin-02")
    ]
    push = ["--broker", mosquitto.url, "--key", str(key)]
    try:
        for name in ("bin-01", "bin-02"):
            states.wait_for(name, lambda s: s["running"]["version"] == BASE)
        proc = ecolens(
            "rollout", str(one_class), "--canary", "50%", "--watch", "25", "--min-results", "5", *push
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "rolled back" in proc.stderr
        verdict = json.loads(proc.stdout[proc.stdout.index("{") :])
        assert not verdict["healthy"] and "plastic share" in " ".join(verdict["reasons"])
        (canary,) = verdict["canary"]["bins"]
        other = "bin-02" if canary == "bin-01" else "bin-01"
        assert verdict["canary"]["plastic_share"] in (0.0, 1.0)  # it answers one class
        back = states.wait_for(canary, lambda s: s["last_event"]["event"] == "rolled_back")
        assert back["running"]["version"] == BASE
        assert states.last(other)["running"]["version"] == BASE  # never touched

        proc = ecolens(
            "rollout", str(good), "--canary", "50%", "--watch", "25", "--min-results", "5", "--promote", *push
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for name in ("bin-01", "bin-02"):
            states.wait_for(name, lambda s: s["running"]["version"] == V2)
    finally:
        for daemon in bins:
            daemon.send_signal(signal.SIGTERM)
        for daemon in bins:
            daemon.wait(30)
        states.recorder.close()


@pytest.mark.parametrize("public_key", ["not base64!", base64.b64encode(b"short").decode()])
def test_bad_public_key_stops_start_up_with_one_line(tmp_path, reference_model, public_key):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecolens.cli",
            "run",
            "--model",
            str(reference_model),
            "--source",
            str(clip_path()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")},
            "ECOLENS_ROLLOUT__PUBLIC_KEY": public_key,
            "ECOLENS_STORE__PATH": str(tmp_path / "q.sqlite3"),
            "ECOLENS_ROLLOUT__DIR": str(tmp_path / "models"),
        },
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "rollout public key must be the base64 of 32 raw Ed25519 bytes" in proc.stderr
