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

import numpy as np
import pytest
import requests
from ecolens.bench.postgres import wait_until
from ecolens.edge.daemon.config.samples import SamplesSection
from ecolens.edge.daemon.samples import SampleKeeper
from ecolens.edge.daemon.store import ResultQueue

from tests.support.daemon_helpers import clip_path, daemon_process
from tests.test_fleet_web import render


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
    assert {s["device_id"] for s in found} == {"bin-s"} and {s["model_version"] for s in found} == {"1.0.0"}
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
