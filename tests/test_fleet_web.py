"""The HTTP API over real HTTP, and the dashboard rendered by a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from ecolens.core.errors import ConfigError
from ecolens.core.http.exposure import check_exposure
from ecolens.core.http.keys import KeyStore, hash_key
from ecolens.fleet.config import HttpSection, ReportSection
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.store import ResultStore, StatusUpdate, StoredResult
from ecolens.fleet.web import BackgroundServer, create_app

from tests.test_api_security import make_certificate

HOUR = 3_600_000


def fleet_database(tmp_path) -> str:
    """A database with 3 bins' results over the last 3 hours; returns its URL."""
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
    return url


@contextmanager
def serving(url: str, keys: KeyStore | None = None, tls: tuple[Path, Path] | None = None):
    app = create_app(lambda: open_database(url, migrate=False), ReportSection(), keys=keys)
    http = HttpSection(port=0, tls_cert=tls[0], tls_key=tls[1]) if tls else HttpSection(port=0)
    background = BackgroundServer(app, http).start()
    try:
        yield f"{background.scheme}://127.0.0.1:{background.port}"
    finally:
        background.stop()


@pytest.fixture
def server(tmp_path):
    """The fleet database served on a free port, without keys (loopback)."""
    with serving(fleet_database(tmp_path)) as base:
        yield base


KEY = "fleet-operator-key-0123456789"


@pytest.fixture
def keyed_server(tmp_path):
    """The same, with one key (stored hashed) required on every route."""
    with serving(fleet_database(tmp_path), KeyStore([hash_key(KEY)])) as base:
        yield base


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
     ({"since": "1h", "until": "2h"}, "must be before"),
     ({"since": "99999999999d"}, "reaches back before the year 1")],
)  # fmt: skip
def test_bad_queries_get_400_with_a_message(server, params, message):
    for path in ("/api/report", "/api/series"):
        response = requests.get(f"{server}{path}", params=params, timeout=10)
        assert response.status_code == 400
        assert message in response.json()["error"]["message"]


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


def render(page_url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, as a real headless Chromium sees it."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--virtual-time-budget=10000", "--dump-dom", page_url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=90).stdout


def test_dashboard_renders_charts_with_data_in_headless_chromium(server, tmp_path):
    dom = render(server + "/", tmp_path / "chromium")
    assert 'data-ready="true"' in dom, dom[:2000]
    points = dict(re.findall(r'id="([a-z]+-chart)" data-points="(\d+)"', dom))
    # 3 bins x 1 bucket each; the fleet has 3 hourly buckets; 3 bins in the status chart.
    assert points == {"share-chart": "3", "items-chart": "3", "status-chart": "3"}, points
    assert "60 items from 3 bins" in dom
    assert re.search(r"<td>bin-2</td><td>offline</td>", dom)


def test_keys_guard_every_route(keyed_server):
    for path in ("/", "/api/report", "/api/health", "/static/vendor/chart.umd.min.js"):
        refused = requests.get(keyed_server + path, timeout=10)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Basic")  # a browser prompts
        assert "missing" in refused.json()["error"]["message"]
    report = f"{keyed_server}/api/report"
    wrong = requests.get(report, headers={"Authorization": "Bearer not-the-key"}, timeout=10)
    assert wrong.status_code == 401 and "invalid" in wrong.json()["error"]["message"]
    bearer = requests.get(report, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert bearer.status_code == 200 and bearer.json()["totals"]["items"] == 60
    header = requests.get(f"{keyed_server}/api/bins", headers={"X-API-Key": KEY}, timeout=10)
    assert header.status_code == 200
    basic = requests.get(keyed_server + "/", auth=("anyone", KEY), timeout=10)
    assert basic.status_code == 200 and "<canvas" in basic.text
    assert requests.get(keyed_server + "/", auth=("anyone", "wrong"), timeout=10).status_code == 401


def test_browser_with_the_key_sees_the_dashboard(keyed_server, tmp_path):
    """Basic credentials in the address: Chromium authenticates the page and its own fetches."""
    locked = render(keyed_server + "/", tmp_path / "anonymous")
    assert 'data-ready="true"' not in locked
    dom = render(keyed_server.replace("http://", f"http://operator:{KEY}@") + "/", tmp_path / "operator")
    assert 'data-ready="true"' in dom, dom[:2000]
    assert "60 items from 3 bins" in dom


def test_https_dashboard(tmp_path):
    cert, key = make_certificate(tmp_path)
    with serving(fleet_database(tmp_path), tls=(cert, key)) as base:
        assert base.startswith("https://")
        report = requests.get(f"{base}/api/report", verify=str(cert), timeout=10)
        assert report.status_code == 200 and report.json()["totals"]["items"] == 60
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base}/api/report", timeout=10)  # not a publicly trusted certificate


def test_lan_address_without_keys_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="without API keys"):
        check_exposure(HttpSection(host="0.0.0.0"), KeyStore().enabled, "the dashboard", "http")
    check_exposure(HttpSection(host="0.0.0.0"), KeyStore(keys=[KEY]).enabled, "the dashboard", "http")
    check_exposure(HttpSection(host="0.0.0.0", insecure=True), KeyStore().enabled, "the dashboard", "http")
    check_exposure(HttpSection(host="localhost"), KeyStore().enabled, "the dashboard", "http")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    cert, _ = make_certificate(first)
    _, other_key = make_certificate(second)
    with pytest.raises(ConfigError, match="not a usable pair"):
        check_exposure(
            HttpSection(tls_cert=cert, tls_key=other_key), KeyStore().enabled, "the dashboard", "http"
        )
