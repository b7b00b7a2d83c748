"""Samples from the bins to the labelling page and out as class folders: a real daemon process
and a real aggregator process over a real Mosquitto; the labelling API with its refusals; the
page rendered in headless Chromium; the daemon's byte budget on a real on-disk queue."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from ecolens.bench.postgres import wait_until
from ecolens.edge.daemon.config.samples import SamplesSection
from ecolens.edge.daemon.samples import SampleKeeper
from ecolens.edge.daemon.store import ResultQueue

from tests.support.chromium import render
from tests.support.daemon_helpers import clip_path, daemon_process
from tests.support.model_variants import shipped_version


def result(event_id: str, uncertain: bool) -> dict:
    return {"event_id": event_id, "uncertain": uncertain, "label": "plastic", "confidence": 0.6}


def test_every_uncertain_item_and_a_share_of_the_rest_within_the_byte_budget(tmp_path):
    store = ResultQueue(tmp_path / "queue.sqlite3", 10_000, "normal")
    crop = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)  # noise: large JPEGs
    keeper = SampleKeeper(SamplesSection(enabled=True, random_share=0.0), store, "ecolens/b/sample", seed=1)
    assert not keeper.offer(crop, result("confident", False))
    assert keeper.offer(crop, result("unsure", True))
    size = len(store.pending(10)[0].payload)

    budget = SamplesSection(enabled=True, random_share=1.0, max_bytes_per_hour=size * 5 + 10)
    keeper = SampleKeeper(budget, store, "ecolens/b/sample", seed=1)
    sent = [keeper.offer(crop, result(f"item-{i}", False)) for i in range(20)]
    assert sent.count(True) == 5 and keeper.over_budget == 15
    keeper.sent = type(keeper.sent)((t - 3600, n) for t, n in keeper.sent)  # an hour later
    assert keeper.offer(crop, result("next-hour", False))
    rows = store.pending(100)
    assert {r.topic for r in rows} == {"ecolens/b/sample"} and len(rows) == 7
    body = json.loads(rows[0].payload)
    assert body["result"]["event_id"] == "unsure" and body["jpeg"].startswith("/9j/")  # base64 JPEG
    store.close()


@pytest.fixture
def aggregator(tmp_path, mosquitto):
    samples = tmp_path / "samples"
    log = tmp_path / "aggregate.log"
    command = [sys.executable, "-m", "ecolens.cli", "aggregate", "--broker", mosquitto.url]
    command += [
        "--database",
        f"sqlite:///{tmp_path / 'fleet.db'}",
        "--http-port",
        "0",
        "--samples-dir",
        str(samples),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stderr=stderr, env=env)
    try:
        assert wait_until(lambda: "aggregating" in log.read_text(), timeout=30), log.read_text()
        port = re.search(r"dashboard http://127.0.0.1:(\d+)/", log.read_text()).group(1)
        yield f"http://127.0.0.1:{port}", samples
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_samples_reach_the_labelling_page_and_export_as_class_folders(
    tmp_path, mosquitto, reference_model, aggregator
):
    base, samples_dir = aggregator
    args = [
        "--source",
        str(clip_path()),
        "--speed",
        "4",
        "--model",
        str(reference_model),
        "--broker",
        mosquitto.url,
    ]
    args += ["--device-id", "bin-s", "--store", str(tmp_path / "queue.sqlite3")]
    daemon = daemon_process(
        args,
        tmp_path / "daemon.log",
        ECOLENS_SAMPLES__ENABLED="true",
        ECOLENS_SAMPLES__RANDOM_SHARE="1.0",
        ECOLENS_AUDIT__ENABLED="false",
        ECOLENS_SERVICE__EXIT_AT_END="true",
    )
    assert daemon.wait(120) == 0, (tmp_path / "daemon.log").read_text()[-3000:]

    def listed() -> list[dict]:
        return requests.get(f"{base}/api/samples", params={"state": "all"}, timeout=5).json()["samples"]

    assert wait_until(lambda: len(listed()) == 10, timeout=30), listed()  # the clip's 10 items
    found = listed()
    assert {s["device_id"] for s in found} == {"bin-s"}
    assert {s["model_version"] for s in found} == {shipped_version()}
    confidences = [s["confidence"] for s in found if not s["uncertain"]]
    assert confidences == sorted(confidences)  # least confident first
    image = requests.get(f"{base}/api/samples/{found[0]['event_id']}/image", timeout=5)
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"

    dom = render(f"{base}/label", tmp_path / "chromium")
    assert dom.count('class="card') == 10 and "0 of 10 labelled" in dom, dom[:3000]

    for sample, label in zip(
        found, ["plastic", "plastic", "non_plastic", "non_plastic", "non_plastic", "skip"]
    ):
        response = requests.post(
            f"{base}/api/samples/{sample['event_id']}/label", json={"label": label}, timeout=5
        )
        assert response.status_code == 200, response.text
    bad = requests.post(
        f"{base}/api/samples/{found[0]['event_id']}/label", json={"label": "maybe"}, timeout=5
    )
    assert bad.status_code == 400 and "plastic, non_plastic, skip" in bad.json()["error"]["message"]
    form = requests.post(
        f"{base}/api/samples/{found[0]['event_id']}/label", data={"label": "skip"}, timeout=5
    )
    assert form.status_code == 415  # a cross-site form post cannot label
    missing = requests.post(f"{base}/api/samples/nope/label", json={"label": "skip"}, timeout=5)
    assert missing.status_code == 404
    progress = requests.get(f"{base}/api/samples/progress", timeout=5).json()
    assert progress["counts"] == {"unlabelled": 4, "plastic": 2, "non_plastic": 3, "skip": 1}
    assert len(requests.get(f"{base}/api/samples", timeout=5).json()["samples"]) == 4

    out = tmp_path / "export"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecolens.cli",
            "samples",
            "export",
            "--dir",
            str(samples_dir),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        len(list((out / "plastic").glob("*.jpg"))) == 2
        and len(list((out / "non_plastic").glob("*.jpg"))) == 3
    )
    per_item = sum(p.stat().st_size for p in samples_dir.rglob("*.jpg")) / 10
    print(
        f"\nmean sample JPEG {per_item / 1024:.1f} KiB ({per_item * 4 / 3 / 1024:.1f} KiB as base64 on MQTT)"
    )


def test_export_without_samples_is_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecolens.cli",
            "samples",
            "export",
            "--dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "no samples in" in proc.stderr


class DevTools:
    """A real headless Chromium driven over the DevTools protocol (real key events)."""

    def __init__(self, profile: Path) -> None:
        from tests.support.chromium import chromium

        self.process = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        assert wait_until(lambda: port_file.is_file() and port_file.read_text().strip(), timeout=30)
        port = port_file.read_text().split()[0]
        targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        page = next(t for t in targets if t["type"] == "page")
        from websockets.sync.client import connect

        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == self.next_id:
                return message.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def press(self, key: str) -> None:
        codes = {"ArrowRight": 39, "ArrowLeft": 37}
        event = {"key": key, "windowsVirtualKeyCode": codes[key] if key in codes else ord(key.upper())}
        if len(key) == 1:
            event["text"] = key
        self.call("Input.dispatchKeyEvent", type="keyDown", **event)
        self.call("Input.dispatchKeyEvent", type="keyUp", **event)

    def close(self) -> None:
        self.socket.close()
        self.process.kill()
        self.process.wait(10)


def test_labelling_page_labels_with_the_keyboard(tmp_path, mosquitto, aggregator):
    pytest.importorskip("websockets")
    import paho.mqtt.publish as publish

    base, _ = aggregator
    crop = np.full((120, 160, 3), 90, dtype=np.uint8)
    for i, (uncertain, confidence) in enumerate([(False, 0.99), (True, 0.55), (False, 0.7), (True, 0.51)]):
        store = ResultQueue(tmp_path / f"q{i}.sqlite3", 10, "normal")
        keeper = SampleKeeper(SamplesSection(enabled=True, random_share=1.0), store, "ecolens/bin-k/sample")
        event = {"event_id": f"ev-{i}", "uncertain": uncertain, "label": "plastic", "confidence": confidence}
        event.update(
            model={"name": "m", "version": "1.0.0", "sha256": "0" * 64}, timestamp="2026-01-01T00:00:00Z"
        )
        keeper.offer(crop, event)
        publish.single("ecolens/bin-k/sample", store.pending(1)[0].payload, qos=1, port=mosquitto.port)
        store.close()

    def count() -> int:
        return requests.get(f"{base}/api/samples/progress", timeout=5).json()["total"]

    assert wait_until(lambda: count() == 4, timeout=20)
    browser = DevTools(tmp_path / "chromium")
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"{base}/label")
        order = "Array.from(document.querySelectorAll('.card')).map(c => c.dataset.eventId)"
        assert wait_until(lambda: browser.evaluate(order) == ["ev-3", "ev-1", "ev-2", "ev-0"], timeout=20)
        browser.press("p")  # ev-3 plastic, focus moves on
        browser.press("n")  # ev-1 non-plastic
        browser.press("ArrowRight")  # leave ev-2 alone
        browser.press("s")  # ev-0 skipped
        text = "document.getElementById('progress').textContent"
        assert wait_until(lambda: (browser.evaluate(text) or "").startswith("3 of 4 labelled"), timeout=10)
        assert "1 plastic, 1 non-plastic, 1 skipped" in browser.evaluate(text)
    finally:
        browser.close()
    labelled = requests.get(f"{base}/api/samples", params={"state": "labelled"}, timeout=5).json()["samples"]
    assert {s["event_id"]: s["human_label"] for s in labelled} == {
        "ev-3": "plastic",
        "ev-1": "non_plastic",
        "ev-0": "skip",
    }
