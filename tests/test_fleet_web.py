"""The HTTP API over real HTTP, and the dashboard rendered by a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import requests
from ecolens.fleet.config import ReportSection
from ecolens.fleet.storage.database import open_database
from ecolens.fleet.storage.store import ResultStore, StatusUpdate, StoredResult
from ecolens.fleet.web import BackgroundServer, create_app

HOUR = 3_600_000


@pytest.fixture
def server(tmp_path):
    """A database with 3 bins' results over the last 3 hours, served on a free port."""
    import time

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    database = open_database(url)
    now = int(time.time() * 1000)
    results = [
        StoredResult(
            event_id=f"e{i}",
            device_id=f"bin-{i % 3}",
            seen_ms=now - (i % 3) * HOUR - 1000,
            received_ms=now,
            label="plastic" if i % 4 == 0 else "non_plastic",
            confidence=0.9,
            uncertain=False,
            inference_ms=20.0,
            frames=1,
            model_name="m",
            model_version="1",
            model_sha256="a" * 64,
            payload="{}",
        )  # fmt: skip
        for i in range(60)
    ]
    ResultStore(database).write(
        results,
        [StatusUpdate("bin-0", "online", now), StatusUpdate("bin-1", "online", now),
         StatusUpdate("bin-2", "offline", now)],
    )  # fmt: skip
    database.close()
    app = create_app(lambda: open_database(url, migrate=False), ReportSection())
    background = BackgroundServer(app, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{background.port}"
    finally:
        background.stop()


def test_json_endpoints(server):
    report = requests.get(f"{server}/api/report", params={"since": "6h"}, timeout=10).json()
    assert report["totals"]["items"] == 60
    assert report["totals"]["plastic"] == 15
    assert report["totals"]["offline"] == 1
    assert {b["device_id"]: b["items"] for b in report["bins"]} == {
        "bin-0": 20, "bin-1": 20, "bin-2": 20
    }  # fmt: skip
    assert sum(p["items"] for p in report["series"]) == 60

    bins = requests.get(f"{server}/api/bins", params={"device": "bin-1"}, timeout=10).json()
    assert [b["device_id"] for b in bins["bins"]] == ["bin-1"] and "series" not in bins
    daily = requests.get(f"{server}/api/series", params={"bucket": "day"}, timeout=10).json()
    assert daily["bucket"] == "day"
    status = requests.get(f"{server}/api/status", timeout=10).json()
    assert {s["device_id"]: s["state"] for s in status["status"]}["bin-2"] == "offline"
    assert requests.get(f"{server}/api/health", timeout=10).json()["ok"] is True


@pytest.mark.parametrize(
    ("params", "message"),
    [({"since": "last week"}, "expected a duration"), ({"bucket": "year"}, "bucket must be"),
     ({"since": "1h", "until": "2h"}, "must be before")],
)  # fmt: skip
def test_bad_queries_get_400_with_a_message(server, params, message):
    response = requests.get(f"{server}/api/report", params=params, timeout=10)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_assets_are_served_locally(server):
    page = requests.get(server + "/", timeout=10).text
    assert "http://" not in page and "https://" not in page  # no CDN
    chart = requests.get(f"{server}/static/vendor/chart.umd.min.js", timeout=10)
    assert chart.status_code == 200 and "Chart.js v4" in chart.text[:200]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium not installed: apt-get install chromium")


def test_dashboard_renders_charts_with_data_in_headless_chromium(server, tmp_path):
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}",
        "--virtual-time-budget=10000", "--dump-dom", server + "/",
    ]  # fmt: skip
    dom = subprocess.run(command, capture_output=True, text=True, timeout=90).stdout
    assert 'data-ready="true"' in dom, dom[:2000]
    points = dict(re.findall(r'id="([a-z]+-chart)" data-points="(\d+)"', dom))
    # 3 bins x 1 bucket each; the fleet has 3 hourly buckets; 3 bins in the status chart.
    assert points == {"share-chart": "3", "items-chart": "3", "status-chart": "3"}, points
    assert "60 items from 3 bins" in dom
    assert re.search(r"<td>bin-2</td><td>offline</td>", dom)
