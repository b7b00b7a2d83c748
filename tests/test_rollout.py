"""Signed, staged rollout through the shipped broker configuration (systemd/mosquitto: passwords,
ACL, one connection per user; a broker user per actor, attacks as `ecolens-rollout`, the
strongest user without the key), real daemon processes and the real CLI:
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
import uuid
from pathlib import Path

import pytest
from ecolens.bench.postgres import wait_until
from ecolens.core.classifier import file_sha256
from ecolens.core.rollout import CHUNK_BYTES, Manifest, generate_keypair, load_private_key, sign
from ecolens.core.wire import chunk_topic, manifest_topic

from tests.support.aggregator_process import start_aggregator
from tests.support.daemon_helpers import Recorder, clip_path, daemon_process
from tests.support.model_variants import later_version, shipped_version, variant
from tests.support.shipped_broker import ATTACKER, FleetBroker

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


def start_bin(
    tmp_path: Path, broker_url: str, model: Path, device: str, public_key: str, **env: str
) -> subprocess.Popen:
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
        **env,
    )


class States:
    """The retained model/state messages of the bins."""

    def __init__(self, broker: FleetBroker | int) -> None:
        """On the shipped broker as a reader of its own, or on a plain one's port."""
        port, auth = (broker, None) if isinstance(broker, int) else (broker.port, broker.observer())
        self.recorder = Recorder(port, ["ecolens/+/model/state", "ecolens/+/result"], "state-recorder", auth)

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


def publish(broker: FleetBroker, topic: str, payload: bytes) -> None:
    """Retained, as the attacker: a broker user who may write every manifest and chunk."""
    import paho.mqtt.publish as mqtt_publish

    user, password = broker.auth(ATTACKER)
    mqtt_publish.single(
        topic, payload, qos=1, retain=True, hostname="127.0.0.1", port=broker.port,
        client_id=user, auth={"username": user, "password": password},
    )  # fmt: skip


def push_flags(broker: FleetBroker, key: Path, database: Path) -> list[str]:
    """`ecolens rollout` as the operator runs it: its broker user, the key, the fleet database."""
    return [
        "--broker",
        broker.url_for("ecolens-rollout"),
        "--key",
        str(key),
        "--database",
        f"sqlite:///{database}",
    ]


def chunks_of(data: bytes) -> list[bytes]:
    """As `ecolens rollout` cuts a model: CHUNK_BYTES each (the shipped broker's packet limit)."""
    return [data[start : start + CHUNK_BYTES] for start in range(0, len(data), CHUNK_BYTES)]


def publish_chunks(broker: FleetBroker, model: Path) -> None:
    """Every chunk of ``model``, retained, as the attacker (who may write chunks)."""
    for index, chunk in enumerate(chunks_of(model.read_bytes())):
        publish(broker, chunk_topic("ecolens", file_sha256(model), index), chunk)


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
        chunks=len(chunks_of(data)),
        chunk_bytes=CHUNK_BYTES,
        fetch=chunk_topic("ecolens", sha, "").rstrip("/"),
        issued="2026-01-01T00:00:00Z",
        rollout_id="test",
        expires_ms=int(time.time() * 1000) + 3_600_000,
    )


def test_signed_rollout_installs_refuses_and_rolls_back(tmp_path, fleet_broker, reference_model, keys):
    key, public = keys
    newer = variant(reference_model, tmp_path / "v101.tflite", V1)
    states = States(fleet_broker)
    daemon = start_bin(tmp_path, fleet_broker.url_for("bin-01"), reference_model, "bin-01", public)
    push = ["--broker", fleet_broker.url_for("ecolens-rollout"), "--key", str(key)]
    try:
        first = states.wait_for("bin-01", lambda s: s["running"]["version"] == BASE)
        assert first["running"]["sha256"] == file_sha256(reference_model)
        topic = manifest_topic("ecolens", "bin-01")

        # Unsigned, tampered and foreign-key manifests: refused, the running model stays.
        body = manifest_for(newer, "bin-01", 10**15, V1)
        n = states.count("bin-01")
        publish(
            fleet_broker,
            topic,
            json.dumps({"manifest": base64.b64encode(body.to_bytes()).decode()}).encode(),
        )
        states.refused("bin-01", n, "unsigned")
        envelope = json.loads(sign(body, load_private_key(key.read_bytes())))
        forged = body.to_bytes().replace(f'"{V1}"'.encode(), b'"97.0.0"')
        envelope["manifest"] = base64.b64encode(forged).decode()
        n = states.count("bin-01")
        publish(fleet_broker, topic, json.dumps(envelope).encode())
        states.refused("bin-01", n, "signature does not verify")
        n = states.count("bin-01")
        other_key = load_private_key(generate_keypair()[0])
        publish(fleet_broker, topic, sign(body, other_key))
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
            fleet_broker,
            topic,
            sign(manifest_for(even_newer, "bin-01", 5, V2), load_private_key(key.read_bytes())),
        )
        states.refused("bin-01", n, "replayed")
        garbage = tmp_path / "garbage.tflite"
        garbage.write_bytes(b"not a model at all" * 100)
        bad = manifest_for(garbage, "bin-01", int(time.time() * 1000) + 1, V3)
        publish_chunks(fleet_broker, garbage)
        n = states.count("bin-01")
        publish(fleet_broker, topic, sign(bad, load_private_key(key.read_bytes())))
        states.refused("bin-01", n, "does not load")
        assert states.last("bin-01")["running"]["version"] == V1
        assert daemon.poll() is None

        # A restart keeps the installed model; a signed rollback returns to the previous one.
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        n = states.count("bin-01")
        daemon = start_bin(tmp_path, fleet_broker.url_for("bin-01"), reference_model, "bin-01", public)
        assert states.recorder.wait(lambda: states.count("bin-01") > n, 60)
        assert states.last("bin-01")["running"]["version"] == V1
        proc = ecolens("rollout", "rollback", "--devices", "bin-01", *push)
        assert proc.returncode == 0, proc.stderr
        back = states.wait_for("bin-01", lambda s: s["running"]["version"] == BASE)
        assert back["running"]["sha256"] == file_sha256(reference_model)
        assert back["last_event"]["event"] == "rolled_back" and back["previous"] is None

        # A second rollback sends nothing (before, it reinstalled the model just rolled back), and
        # the rolled-back model, signed again, is refused by the bin.
        proc = ecolens("rollout", "rollback", "--devices", "bin-01", *push)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "bin-01: reports no previous model to roll back to; nothing sent\n"
        n = states.count("bin-01")
        proc = ecolens("rollout", str(newer), "--devices", "bin-01", *push)
        assert proc.returncode == 0, proc.stderr
        states.refused("bin-01", n, "was rolled back on this bin (revoked)")
        assert states.last("bin-01")["running"]["version"] == BASE

        status = ecolens("rollout", "status", "--broker", fleet_broker.url_for("ecolens-rollout"))
        assert status.returncode == 0 and "bin-01" in status.stdout and BASE in status.stdout, status.stdout
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        states.recorder.close()


def test_junk_on_the_chunk_topic_is_ignored_and_the_signed_model_still_installs(
    tmp_path, fleet_broker, reference_model, keys
):
    """Anyone who may publish on the chunk topic could leave junk there (retained). Before, a
    bin buffered whatever came, however large, and refused the rollout when the junk came first;
    now a chunk of another length than the signed manifest says is ignored with one log line."""
    key, public = keys
    private = load_private_key(key.read_bytes())
    newer = variant(reference_model, tmp_path / "v101.tflite", V1)
    states = States(fleet_broker)
    daemon = start_bin(tmp_path, fleet_broker.url_for("bin-01"), reference_model, "bin-01", public)
    log_file = tmp_path / "bin-01" / "daemon.log"
    try:
        states.wait_for("bin-01", lambda s: s["running"]["version"] == BASE)
        body = manifest_for(newer, "bin-01", int(time.time() * 1000), V1)
        chunk = chunk_topic("ecolens", body.sha256, 0)
        publish_chunks(fleet_broker, newer)
        publish(fleet_broker, chunk, newer.read_bytes()[:CHUNK_BYTES] + b"junk" * 1000)
        publish(fleet_broker, manifest_topic("ecolens", "bin-01"), sign(body, private))
        assert states.recorder.wait(lambda: "ignored" in log_file.read_text(), 30), log_file.read_text()
        expected = f"chunk 0 of model {body.sha256[:12]} ignored: {CHUNK_BYTES + 4000} bytes"
        assert expected in log_file.read_text()
        publish(fleet_broker, chunk, newer.read_bytes()[:CHUNK_BYTES])
        installed = states.wait_for("bin-01", lambda s: s["running"]["version"] == V1)
        assert installed["running"]["sha256"] == file_sha256(newer)

        # a signed manifest whose chunks cannot make its size is refused before fetching anything
        n = states.count("bin-01")
        even_newer = variant(reference_model, tmp_path / "v102.tflite", V2)
        short = dataclasses.replace(manifest_for(even_newer, "bin-01", int(time.time() * 1000), V2), chunks=3)
        publish(fleet_broker, manifest_topic("ecolens", "bin-01"), sign(short, private))
        states.refused("bin-01", n, "do not make")

        # Bounded work whoever signed it: 62,914,560 one-byte chunks, nesting 100,000 deep (also
        # inside a validly sized envelope), and an expired manifest: one refusal line each.
        serial = int(time.time() * 1000) + 10
        tiny = dataclasses.replace(
            manifest_for(even_newer, "bin-01", serial, V2), size=62_914_560, chunks=62_914_560, chunk_bytes=1
        )
        for payload, reason in [
            (sign(tiny, private), "62914560 chunks of 1 bytes are over the bound (256 chunks"),
            (b"[" * 100_000 + b"]" * 100_000, "manifest envelope of 200000 bytes is over 16384"),
            (b"[" * 5000 + b"]" * 5000, "manifest envelope nests deeper than 8"),
            (
                sign(dataclasses.replace(short, serial=serial, expires_ms=serial - 3_600_000), private),
                "expired",
            ),
        ]:
            n = states.count("bin-01")
            publish(fleet_broker, manifest_topic("ecolens", "bin-01"), payload)
            states.refused("bin-01", n, reason)
        text = log_file.read_text()
        assert "Traceback" not in text and "RecursionError" not in text
        assert sum("rollout refused" in line for line in text.splitlines()) == 5, text
        assert states.last("bin-01")["running"]["version"] == V1
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        states.recorder.close()


class OtherBins:
    """Bins without rollout that only publish results on their own topics: three at a 50 % plastic
    share (the clip's), and one attacker sending 30 "plastic" results a second."""

    def __init__(self, broker: FleetBroker) -> None:
        import threading

        import paho.mqtt.client as mqtt

        self.clients = {}
        for device in ("bin-evil", "bin-r1", "bin-r2", "bin-r3"):  # each with its own credentials
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
            client.username_pw_set(*broker.auth(device))
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            self.clients[device] = client
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from ecolens.core.contract import make_result

        model = {"name": "ecolens-plastic-lite0", "version": BASE, "sha256": "b" * 64}
        tick = 0
        while not self.stop_event.wait(1 / 30):
            tick += 1
            bins = [("bin-evil", (0.1, 0.9))]
            if tick % 30 == 0:
                scores = (0.1, 0.9) if tick % 60 == 0 else (0.9, 0.1)
                bins += [(f"bin-r{n}", scores) for n in (1, 2, 3)]
            for device, scores in bins:
                result = make_result(
                    ("non_plastic", "plastic"),
                    scores,
                    model,
                    5.0,
                    device_id=device,
                    event_id=uuid.uuid4().hex,
                )
                self.clients[device].publish(f"ecolens/{device}/result", json.dumps(result), qos=1)

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        for client in self.clients.values():
            client.loop_stop()
            client.disconnect()


def test_the_aggregator_rolls_back_bad_canaries_and_one_flooding_bin_decides_nothing(
    tmp_path, fleet_broker, reference_model, keys
):
    """No command watches the bad canaries: the running aggregator judges each canary bin against
    the median of the other bins and signs the rollback itself; a bin flooding "plastic" results
    neither keeps the one-class model nor rolls back the good one, which is judged healthy."""
    key, public = keys
    one_class = variant(reference_model, tmp_path / "one-class.tflite", V1, one_class=True)
    good = variant(reference_model, tmp_path / "good.tflite", V2)
    states = States(fleet_broker)
    database = tmp_path / "fleet.db"
    log = tmp_path / "aggregate.log"
    aggregator = start_aggregator(log, fleet_broker.url_for("ecolens-aggregator"), database, key, "--no-http")
    names = ["bin-01", "bin-02"]
    bins = [start_bin(tmp_path, fleet_broker.url_for(name), reference_model, name, public) for name in names]
    others = OtherBins(fleet_broker)
    push = push_flags(fleet_broker, key, database)
    canary = ["--canary", "100%", "--min-canaries", "2", "--min-results", "8", "--max-share-delta", "0.3"]
    try:
        for name in names:
            states.wait_for(name, lambda s: s["running"]["version"] == BASE)
        proc = ecolens("rollout", str(one_class), *canary, "--window", "90", *push)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert set(proc.stdout.split("signed for ")[1].split(" in ")[0].split(", ")) == set(names)
        for name in names:
            states.wait_for(name, lambda s: s["running"]["version"] == V1)
        for name in names:
            back = states.wait_for(name, lambda s: s["last_event"]["event"] == "rolled_back", timeout=90)
            assert back["running"]["version"] == BASE and back["previous"] is None

        # The aggregator logs after its rollback is published: the bins can be back before the line.
        def worse_lines() -> list[str]:
            return [line for line in log.read_text().splitlines() if "canary worse than the rest" in line]

        wait_until(lambda: worse_lines(), timeout=10)
        lines = worse_lines()
        assert len(lines) == 1 and "rolled back" in lines[0] and "plastic share" in lines[0], log.read_text()
        (row,) = sqlite3.connect(database).execute("SELECT state, verdict FROM rollouts").fetchall()
        verdict = json.loads(row[1])
        assert row[0] == "rolled_back" and sorted(verdict["rolled_back"]) == names and verdict["decisive"]
        assert {v["plastic_share"] for v in verdict["canary"].values()} <= {0.0, 1.0}  # one class
        assert verdict["rest"]["bin-evil"]["results"] > 10 * verdict["rest"]["bin-r1"]["results"]

        proc = ecolens("rollout", str(good), *canary, "--window", "30", "--watch", "--promote", *push)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert '"state": "healthy"' in proc.stdout and "promoted to no other bins" in proc.stdout
        for name in names:
            assert states.last(name)["running"]["version"] == V2

        shown = json.loads(ecolens("rollout", "status", "--json", *push).stdout)
        assert [r["state"] for r in shown["rollouts"]] == ["healthy", "rolled_back"]
        proc = ecolens("rollout", str(one_class), "--devices", "bin-01", *push)  # revoked: never again
        assert proc.returncode != 0 and "was rolled back" in proc.stderr, proc.stderr
    finally:
        others.close()
        for process in (*bins, aggregator):
            process.send_signal(signal.SIGTERM)
        for process in (*bins, aggregator):
            process.wait(30)
        states.recorder.close()


def test_a_loose_key_is_refused(tmp_path, fleet_broker, keys):
    """A key file others may read stops the aggregator at start with one line."""
    key, _ = keys
    loose = tmp_path / "loose.key"
    loose.write_bytes(key.read_bytes())
    loose.chmod(0o640)
    as_aggregator = fleet_broker.url_for("ecolens-aggregator")
    proc = ecolens("aggregate", "--broker", as_aggregator, "--no-http", "--rollout-key", str(loose),
                   "--database", f"sqlite:///{tmp_path / 'x.db'}")  # fmt: skip
    assert proc.returncode != 0 and "readable by others (mode 640)" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


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
