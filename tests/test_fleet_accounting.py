"""End-to-end accounting (issue 11): a bin numbers its results in its on-disk queue, so results
lost anywhere between the camera and the database show up as "results missing from bin X"
in `ecolens report` and the aggregator's JSON API, however the loss happened."""

from __future__ import annotations

import json
import subprocess
import sys

import requests
from ecolens.bench.mosquitto import free_port
from ecolens.bench.postgres import wait_until
from ecolens.core.contract import make_result
from ecolens.fleet.config import HttpSection, ReportSection
from ecolens.fleet.storage import open_database
from ecolens.fleet.web import BackgroundServer, create_app

from tests.support.daemon_helpers import clip_path, daemon_process
from tests.test_fleet_ingest import LABELS, MODEL, aggregator, publish_raw, stored_event_ids


def run_bin(tmp_path, broker_url: str, model, log_name: str, **env: str) -> int:
    """One pass of the sample clip through a real `ecolens run` (exits at the clip's end)."""
    args = [
        "--source", str(clip_path()), "--speed", "0", "--model", str(model), "--broker", broker_url,
        "--device-id", "bin-a", "--store", str(tmp_path / "queue.sqlite3"),
    ]  # fmt: skip
    env = {"ECOLENS_SERVICE__DRAIN_TIMEOUT_S": "3", "ECOLENS_STORE__MAX_ITEMS": "4", **env}
    process = daemon_process(args, tmp_path / log_name, **env)
    return process.wait(timeout=120)


def report(url: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ecolens.cli", "report", "--database", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_results_dropped_by_a_full_bin_queue_are_reported_missing(tmp_path, mosquitto, reference_model):
    """Broker down: the bin's 4-result queue drops the 6 oldest of the clip's 10 items. Broker
    back: the 4 kept and the 10 of a second pass arrive; the 6 are reported missing."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    mosquitto.stop()
    assert run_bin(tmp_path, mosquitto.url, reference_model, "first.log") == 0
    mosquitto.start()
    agg = aggregator(mosquitto, url, "agg-accounting").start()
    try:
        # a queue with room: its first new item must not push out a kept one the link has not sent yet
        room = {"ECOLENS_STORE__MAX_ITEMS": "1000"}
        assert run_bin(tmp_path, mosquitto.url, reference_model, "second.log", **room) == 0
        assert wait_until(lambda: len(stored_event_ids(url)) == 14, timeout=30)
    finally:
        agg.stop()
    database = open_database(url, migrate=False)
    seqs = sorted(row[0] for row in database.query("SELECT seq FROM results"))
    database.close()
    assert seqs == list(range(7, 21))  # 1-6 dropped from the full queue

    table = report(url, "status")
    assert table.returncode == 0, table.stderr
    assert "results missing from bin bin-a: 6" in table.stdout
    as_json = json.loads(report(url, "--format", "json").stdout)
    assert as_json["missing"] == {"bin-a": 6} and as_json["totals"]["missing_results"] == 6

    app = create_app(lambda: open_database(url, migrate=False), ReportSection())
    server = BackgroundServer(app, HttpSection(host="127.0.0.1", port=free_port())).start()
    try:
        api = requests.get(f"http://127.0.0.1:{server.port}/api/status", timeout=10).json()
        metrics = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
    finally:
        server.stop()
    assert api["missing"] == {"bin-a": 6}
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'ecolens_fleet_results_missing{device_id="bin-a"} 6.0' in metrics.text


def test_gaps_are_counted_per_bin_and_repeats_are_not_gaps(mosquitto, tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"

    def result(device: str, seq: int, event: str) -> tuple[str, bytes]:
        body = make_result(LABELS, (0.4, 0.6), MODEL, 9.0, device_id=device, event_id=event, seq=seq)
        return f"ecolens/{device}/result", json.dumps(body).encode()

    messages = [result("bin-1", n, f"one-{n}") for n in (1, 2, 3, 5, 6, 9)]  # 4, 7, 8 lost
    messages += [result("bin-2", n, f"two-{n}") for n in (1, 2, 3)]  # complete
    messages += [result("bin-1", 3, "one-3"), result("bin-3", 2, "three-2")]  # a repeat; 1 lost
    agg = aggregator(mosquitto, url, "agg-gaps").start()
    try:
        publish_raw(mosquitto, messages)
        assert wait_until(lambda: agg.stats.snapshot()["lag"] == 0 and len(stored_event_ids(url)) == 10)
    finally:
        agg.stop()
    data = json.loads(report(url, "--format", "json").stdout)
    assert data["missing"] == {"bin-1": 3, "bin-3": 1}
    one = json.loads(report(url, "--format", "json", "--device", "bin-2").stdout)
    assert one["missing"] == {}
