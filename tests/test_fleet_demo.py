"""`ecolens demo --fleet` as a user runs it: a real process with a local Mosquitto, the
scenario city stored, a real aggregator ingesting live bins, the dashboard over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests

from tests.support.chromium import DevToolsPage


def test_fleet_demo_serves_every_state_and_ingests_live_bins(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "ecolens.cli", "demo", "--fleet", "--port", "0", "--seconds", "40", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line, process.stderr.read()
        announced = json.loads(line)
        base = announced["dashboard"]
        assert base.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 30
        while True:  # the live bins' first results pass through the broker and the aggregator
            health = requests.get(f"{base}api/health", timeout=10).json()
            if health["ingest"]["stored"] >= 2:
                break
            assert time.monotonic() < deadline, health
            time.sleep(1)
        report = requests.get(f"{base}api/report", timeout=10).json()
        states = {s["device_id"]: s for s in report["status"]}
        roles = announced["roles"]
        assert len(report["bins"]) >= 42 + 1 and any(d.startswith("live-") for d in states)
        assert states[roles["offline"]]["state"] == "offline"
        assert states[roles["stale"]]["state"] == "stale"
        assert states[roles["camera_down"]]["camera_error"]
        assert states[roles["slow"]]["slow_inference"] and states[roles["queue"]]["queue_growing"]
        assert report["missing"][roles["missing"]] == 4
        with DevToolsPage(tmp_path / "chromium", 1400, 1000) as page:
            page.open(base)
            assert page.evaluate("document.body.dataset.health") == "ok"
            assert page.evaluate("document.querySelector('#health').textContent").startswith("Ingest live")
        assert process.wait(60) == 0, process.stderr.read()
    finally:
        process.kill()
        process.wait(10)
