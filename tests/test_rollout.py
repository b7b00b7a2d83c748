"""Signed, staged rollout with a real Mosquitto, real daemon processes and the real CLI:
a signed model is installed by hot swap and reported; unsigned, tampered, foreign-key,
replayed and older manifests and a model that does not load are refused while the running
model keeps working; a rollback returns to the previous model; a canary answering one class
or one that keeps crashing is rolled back by the running aggregator (no command watching), a
healthy one is promoted to every bin, and `rollout status` lists every recorded rollout."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ecolens.core.classifier import file_sha256
from ecolens.core.rollout import Manifest, generate_keypair, load_private_key, sign
from ecolens.core.wire import chunk_topic, manifest_topic

from tests.support.aggregator_process import start_aggregator
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
        expires_ms=int(time.time() * 1000) + 3_600_000,
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


def test_junk_on_the_chunk_topic_is_ignored_and_the_signed_model_still_installs(
    tmp_path, mosquitto, reference_model, keys
):
    """Anyone who may publish on the chunk topic could leave junk there (retained). Before, a
    bin buffered whatever came, however large, and refused the rollout when the junk came first;
    now a chunk of another length than the signed manifest says is ignored with one log line."""
    key, public = keys
    private = load_private_key(key.read_bytes())
    newer = variant(reference_model, tmp_path / "v101.tflite", V1)
    states = States(mosquitto.port)
    daemon = start_bin(tmp_path, mosquitto.url, reference_model, "bin-01", public)
    log_file = tmp_path / "bin-01" / "daemon.log"
    try:
        states.wait_for("bin-01", lambda s: s["running"]["version"] == BASE)
        body = manifest_for(newer, "bin-01", int(time.time() * 1000), V1)
        chunk = chunk_topic("ecolens", body.sha256, 0)
        publish(mosquitto.port, chunk, newer.read_bytes() + b"junk" * 1000)
        publish(mosquitto.port, manifest_topic("ecolens", "bin-01"), sign(body, private))
        assert states.recorder.wait(lambda: "ignored" in log_file.read_text(), 30), log_file.read_text()
        expected = f"chunk 0 of model {body.sha256[:12]} ignored: {body.size + 4000} bytes"
        assert expected in log_file.read_text()
        publish(mosquitto.port, chunk, newer.read_bytes())
        installed = states.wait_for("bin-01", lambda s: s["running"]["version"] == V1)
        assert installed["running"]["sha256"] == file_sha256(newer)

        # a signed manifest whose chunks cannot make its size is refused before fetching anything
        n = states.count("bin-01")
        even_newer = variant(reference_model, tmp_path / "v102.tflite", V2)
        short = dataclasses.replace(manifest_for(even_newer, "bin-01", int(time.time() * 1000), V2), chunks=3)
        publish(mosquitto.port, manifest_topic("ecolens", "bin-01"), sign(short, private))
        states.refused("bin-01", n, "do not make")
        assert states.last("bin-01")["running"]["version"] == V1
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        states.recorder.close()


def canary_of(stdout: str) -> str:
    """The bin `rollout --canary` signed the model for (one of two bins at 50%)."""
    return stdout.split("signed for ")[1].split()[0]


def test_the_aggregator_rolls_back_bad_canaries_and_a_good_one_is_promoted(
    tmp_path, mosquitto, reference_model, keys
):
    """No command watches the bad canaries: the running aggregator judges them from the results
    and statuses it stores and signs the rollback itself; `rollout status` then lists all three
    rollouts with the aggregator's verdicts."""
    key, public = keys
    one_class = variant(reference_model, tmp_path / "one-class.tflite", V1, one_class=True)
    good = variant(reference_model, tmp_path / "good.tflite", V2)
    crashing = variant(reference_model, tmp_path / "crashing.tflite", V3)
    states = States(mosquitto.port)
    database = tmp_path / "fleet.db"
    log = tmp_path / "aggregate.log"
    aggregator = start_aggregator(log, mosquitto.url, database, key, "--no-http")
    names = ["bin-01", "bin-02"]
    bins = [start_bin(tmp_path, mosquitto.url, reference_model, name, public) for name in names]
    push = ["--broker", mosquitto.url, "--key", str(key), "--database", f"sqlite:///{database}"]
    try:
        for name in ("bin-01", "bin-02"):
            states.wait_for(name, lambda s: s["running"]["version"] == BASE)
        proc = ecolens(
            "rollout", str(one_class), "--canary", "50%", "--window", "60", "--min-results", "5", *push
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "the aggregator watches the canary for 60 s" in proc.stdout
        canary = canary_of(proc.stdout)
        other = "bin-02" if canary == "bin-01" else "bin-01"
        states.wait_for(canary, lambda s: s["running"]["version"] == V1)
        back = states.wait_for(canary, lambda s: s["last_event"]["event"] == "rolled_back", timeout=90)
        assert back["running"]["version"] == BASE
        assert states.last(other)["running"]["version"] == BASE  # never touched
        lines = [line for line in log.read_text().splitlines() if "canary worse than the rest" in line]
        assert len(lines) == 1 and "rolled back" in lines[0] and "plastic share" in lines[0], log.read_text()
        (row,) = sqlite3.connect(database).execute("SELECT state, verdict FROM rollouts").fetchall()
        verdict = json.loads(row[1])
        assert row[0] == "rolled_back" and verdict["rolled_back"] == [canary]
        assert verdict["canary"]["plastic_share"] in (0.0, 1.0)  # it answers one class

        proc = ecolens(
            "rollout", str(good), "--canary", "50%", "--window", "20", "--min-results", "5",
            "--watch", "--promote", *push,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert '"state": "healthy"' in proc.stdout and "promoted" in proc.stdout
        canary_of_good = canary_of(proc.stdout)
        for name in ("bin-01", "bin-02"):
            states.wait_for(name, lambda s: s["running"]["version"] == V2)

        # Answers like the rest's, but the canary crashes twice (killed: the broker's last will
        # says offline): rolled back on the error rate alone.
        loose = ["--max-share-delta", "1", "--max-uncertain-delta", "1"]
        proc = ecolens(
            "rollout", str(crashing), "--canary", "50%", "--window", "60", "--min-results", "5", *loose, *push
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        crashed = canary_of(proc.stdout)
        states.wait_for(crashed, lambda s: s["running"]["version"] == V3)
        for _ in range(2):
            n = states.count(crashed)
            bins[names.index(crashed)].kill()
            bins[names.index(crashed)].wait(30)
            bins[names.index(crashed)] = start_bin(tmp_path, mosquitto.url, reference_model, crashed, public)
            assert states.recorder.wait(lambda n=n: states.count(crashed) > n, 60)  # restarted
        back = states.wait_for(
            crashed,
            lambda s: s["last_event"]["event"] == "rolled_back" and s["running"]["version"] == V2,
            timeout=90,
        )
        rows = sqlite3.connect(database).execute("SELECT state, verdict FROM rollouts ORDER BY started_ms")
        (_, _), (_, _), (state, text) = rows.fetchall()
        verdict = json.loads(text)
        assert state == "rolled_back" and verdict["rolled_back"] == [crashed], verdict
        assert verdict["canary"]["errors"] >= 1 and verdict["rest"]["errors"] == 0, verdict
        assert len(verdict["reasons"]) == 1 and "error rate above the rest" in verdict["reasons"][0], verdict

        status = ecolens("rollout", "status", *push)
        assert status.returncode == 0, status.stderr
        print(f"\n{status.stdout}")
        lines = status.stdout.split("\n\n")[1].splitlines()
        assert lines[0].split() == ["rollout", "version", "sha256", "canaries", "state", "decided", "verdict"]
        assert [line.split()[1:5] for line in lines[1:]] == [
            [V3, file_sha256(crashing)[:12], crashed, "rolled_back"],
            [V2, file_sha256(good)[:12], canary_of_good, "healthy"],
            [V1, file_sha256(one_class)[:12], canary, "rolled_back"],
        ], status.stdout
        assert "error rate above the rest" in lines[1] and "plastic share differs" in lines[3]
        assert lines[2].endswith("within the thresholds")
        shown = json.loads(ecolens("rollout", "status", "--json", *push).stdout)
        assert set(shown["bins"]) == {"bin-01", "bin-02"}
        assert [r["state"] for r in shown["rollouts"]] == ["rolled_back", "healthy", "rolled_back"]
        assert shown["rollouts"][0]["verdict"]["canary"]["errors"] >= 1
    finally:
        for process in (*bins, aggregator):
            process.send_signal(signal.SIGTERM)
        for process in (*bins, aggregator):
            process.wait(30)
        states.recorder.close()


def test_a_worse_canary_without_a_key_is_only_logged_and_a_loose_key_is_refused(tmp_path, mosquitto, keys):
    """Without rollout.key_file the aggregator judges and says what to run; a key file others
    may read stops it at start with one line."""
    from ecolens.fleet.canary.records import StagedRollout, load_rollout, record_rollout
    from ecolens.fleet.canary.supervisor import CanarySupervisor
    from ecolens.fleet.storage import open_database

    key, _ = keys
    loose = tmp_path / "loose.key"
    loose.write_bytes(key.read_bytes())
    loose.chmod(0o640)
    proc = ecolens("aggregate", "--broker", mosquitto.url, "--no-http", "--rollout-key", str(loose),
                   "--database", f"sqlite:///{tmp_path / 'x.db'}")  # fmt: skip
    assert proc.returncode != 0 and "readable by others (mode 640)" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr

    database = open_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    now_ms = int(time.time() * 1000)
    rows = []
    for i in range(40):  # the canary says plastic every time, the rest a quarter of the time
        other = "plastic" if i % 8 == 0 else "non_plastic"
        device, label = ("bin-01", "plastic") if i % 2 else ("bin-02", other)
        payload = (
            f"e{i}",
            device,
            now_ms - 500 + i,  # seen after the rollout started and before the check, however fast
            now_ms - 500 + i,
            label,
            0.9,
            False,
            5.0,
            1,
            "m",
            "2",
            "ab" if i % 2 else "cd",
            "{}",
            i,
        )
        rows.append(payload)
    database.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    record_rollout(database, StagedRollout("r1", "ab", "m", "2", ("bin-01",), now_ms - 1000, 600.0, 5))
    from ecolens.core.mqtt import broker_overrides
    from ecolens.fleet.config import load_fleet_config

    config = load_fleet_config(None, dict(broker_overrides(mosquitto.url)))
    supervisor = CanarySupervisor(lambda: database, config.mqtt, "ecolens", None)
    supervisor.check(database)
    decided = load_rollout(database, "r1")
    assert decided is not None and decided.state == "worse" and decided.verdict["rolled_back"] == []
    assert supervisor.stats.snapshot()["worse_not_rolled_back"] == 1
    supervisor.check(database)  # decided once: nothing more
    assert supervisor.stats.snapshot()["worse_not_rolled_back"] == 1
    database.close()


def test_a_canary_that_keeps_going_offline_is_judged_before_it_answers_enough(tmp_path):
    """Errors are compared on results plus errors: a canary that crashes on most items is worse
    at once; offline before the rollout began, or once in many results, is not."""
    from ecolens.fleet.canary.judging import judge_rollout
    from ecolens.fleet.canary.records import StagedRollout, record_rollout
    from ecolens.fleet.storage import open_database

    database = open_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    now_ms = int(time.time() * 1000)
    rollout = StagedRollout("r1", "ab", "m", "2", ("bin-01",), now_ms - 10_000, 600.0, 5)
    record_rollout(database, rollout)

    def seen(device: str, sha: str, count: int, first: int = 0) -> None:
        rows = [(f"{device}-{sha}-{n}", device, now_ms - 5000 + n, now_ms, "plastic", 0.9, False, 5.0, 1,
                 "m", "2", sha, "{}", n) for n in range(first, first + count)]  # fmt: skip
        database.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def offline(device: str, at_ms: int) -> None:
        database.execute("INSERT INTO status_events VALUES (?, ?, ?)", (device, at_ms, "offline"))

    seen("bin-02", "cd", 20)
    seen("bin-01", "ab", 1)
    offline("bin-01", now_ms - 20_000)  # before the rollout: not counted
    offline("bin-02", now_ms - 4000)  # the rest has an error too
    assert judge_rollout(database, rollout, now_ms) is None  # too few results, one error
    for at_ms in (now_ms - 3000, now_ms - 2000, now_ms - 1000, now_ms - 500):
        offline("bin-01", at_ms)
    verdict = judge_rollout(database, rollout, now_ms)
    assert verdict is not None and not verdict.healthy
    assert verdict.canary["errors"] == 4 and verdict.canary["error_rate"] == 0.8
    assert verdict.rest["errors"] == 1 and verdict.rest["error_rate"] == 0.048
    assert verdict.reasons == ["error rate above the rest by 0.75 (> 0.10; canary offline 4 times)"]

    seen("bin-01", "ab", 40, first=1)  # the same errors over many results: within the threshold
    assert judge_rollout(database, rollout, now_ms) is None
    database.close()


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
