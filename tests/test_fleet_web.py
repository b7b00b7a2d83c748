"""The HTTP API over real HTTP, and the dashboard rendered by a real headless Chromium."""

from __future__ import annotations

import re
import struct
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from ecolens.core.errors import ConfigError
from ecolens.core.http.exposure import check_exposure
from ecolens.core.http.keys import KeyStore, hash_key
from ecolens.fleet.config import HttpSection, ReportSection
from ecolens.fleet.labelling import labelling_blueprint
from ecolens.fleet.samples.store import SampleStore
from ecolens.fleet.simulator import reference_model_info
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.store import ResultStore, StatusUpdate, StoredResult
from ecolens.fleet.web import BackgroundServer, create_app

from tests.support.chromium import DevToolsPage, evaluate_at, render, screenshot
from tests.support.fleet_scenario import copy_database, scenario_database
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
            # bin-2 numbers its results 1..21 and number 7 never arrived: one result missing
            seq=(i // 3 + 1 + (i // 3 >= 6)) if i % 3 == 2 else None,
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
def serving(
    url: str,
    keys: KeyStore | None = None,
    tls: tuple[Path, Path] | None = None,
    report: ReportSection | None = None,
):
    app = create_app(lambda: open_database(url, migrate=False), report or ReportSection(), keys=keys)
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


def test_unknown_paths_and_wrong_methods_get_the_json_error_body(server):
    """Flask's own HTML error pages never reach a client: the body every EcoLens server sends."""
    for path in ("/nope", "/api/nothing", "/static/missing.js"):
        missing = requests.get(server + path, timeout=10)
        assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/json"
        assert missing.json() == {"error": {"code": "not_found", "message": "no such page or endpoint"}}
    wrong = requests.post(f"{server}/api/report", timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert set(wrong.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_assets_are_served_locally(server):
    page = requests.get(server + "/", timeout=10).text
    assert "http://" not in page and "https://" not in page  # no CDN
    chart = requests.get(f"{server}/static/vendor/chart.umd.min.js", timeout=10)
    assert chart.status_code == 200 and "Chart.js v4" in chart.text[:200]


def data_rows(dom: str) -> dict[str, int]:
    """The counts the page writes beside what it drew: chart points, ranking and table rows."""
    points = {k: int(v) for k, v in re.findall(r'id="([a-z-]+-chart)" data-points="(\d+)"', dom)}
    rows = {k: int(v) for k, v in re.findall(r'id="([a-z-]+)"[^>]*? data-rows="(\d+)"', dom)}
    return {**points, **rows}


def test_dashboard_renders_with_data_in_headless_chromium(server, tmp_path):
    dom = render(server + "/", tmp_path / "chromium")
    assert 'data-ready="true"' in dom, dom[:2000]
    counts = data_rows(dom)
    # The fleet has 3 hourly buckets; all 3 bins ranked and in the table; one needs attention.
    assert counts["fleet-series-chart"] == 3, counts
    assert counts["ranking"] == counts["bins-table"] == 3, counts
    assert counts["attention"] == 1, counts
    assert re.search(r'href="#/bin/bin-2">bin-2</a></span><span class="why">offline, last seen just now', dom)
    assert '<div class="name">Items</div><div class="value">60</div>' in dom
    assert "offline, last seen just now; 1 results missing" in dom
    assert '<div class="name">Results missing</div><div class="value">1</div>' in dom
    # The table row of bin-2: status pill, "just now", 20 items, 25.0 % plastic, 0 % uncertain,
    # 1 result missing, model 1.
    row = re.search(r"<tr><td><a [^>]*>bin-2</a></td>(.*?)</tr>", dom).group(1)
    cells = re.findall(r"<td[^>]*>(?:<span[^>]*>)?([^<]*)", row)
    # No stats from these bins: inference, queue, CPU and memory are dashes.
    assert cells == ["offline", "just now", "20", "25.0 %", "0.0 %", "1", "–", "–", "–", "–", "1"], cells


def test_ranking_is_sorted_by_plastic_share_with_item_counts(scenario_db, tmp_path):
    """The ranking against the very report the page drew (read in the same moment as its DOM): a
    report fetched separately seconds apart can lose a result at the window's old edge."""
    import json

    path, _ = scenario_db
    url = copy_database(path, tmp_path / "fleet.db")
    with serving(url) as base, DevToolsPage(tmp_path / "chromium", 1400, 1000) as page:
        page.open(base + "/")
        drawn = json.loads(page.evaluate(
            "JSON.stringify({report: view.fleet.report, dom: document.documentElement.outerHTML})"
        ))  # fmt: skip
    report, dom = drawn["report"], drawn["dom"]
    ranked = re.findall(
        r'<li[^>]*><a href="#/bin/([^"]+)">.*?<span class="share">([^<]+)</span>'
        r'<span class="items">([^<]+)<',
        dom,
    )
    with_items = [b for b in report["bins"] if b["items"]]
    assert len(ranked) == len(with_items) >= 40
    expected = sorted(with_items, key=lambda b: (-(b["plastic_share"] or -1), -b["items"]))
    assert [r[0] for r in ranked] == [b["device_id"] for b in expected]
    # The page rounds with JavaScript's toFixed(1), Python's format may round a tie the other way.
    shown = [float(r[1].removesuffix(" %")) for r in ranked]
    assert all(abs(v - b["plastic_share"] * 100) <= 0.05 + 1e-9 for v, b in zip(shown, expected))
    assert [int(r[2].replace("\u202f", "")) for r in ranked] == [b["items"] for b in expected]


def test_bin_page_shows_its_series_status_history_and_newest_results(scenario_db, tmp_path):
    """The scenario's outage bin: offline 8 h ago, back 6 h ago, its queue caught up. Checked
    against the very bin page the browser drew, read in the same moment as its DOM."""
    import json

    path, scenario = scenario_db
    device = scenario.roles["outage"]
    url = copy_database(path, tmp_path / "fleet.db")
    with serving(url) as base, DevToolsPage(tmp_path / "chromium", 1400, 1000) as browser:
        missing = requests.get(f"{base}/api/bin/bin-999", timeout=10)
        browser.open(base + f"/#/bin/{device}")
        drawn = json.loads(browser.evaluate(
            "JSON.stringify({page: view.bin, dom: document.documentElement.outerHTML})"
        ))  # fmt: skip
    page, dom = drawn["page"], drawn["dom"]
    # Newest first: back online 6 h ago after going offline 8 h ago.
    assert [h["status"] for h in page["status_history"]][:2] == ["online", "offline"]
    assert len(page["recent"]) == 20 and page["recent"][0]["seen"] >= page["recent"][-1]["seen"]
    assert page["bins"][0]["model_version"] == reference_model_info()[1]["version"]
    assert missing.status_code == 404 and "bin-999" in missing.json()["error"]["message"]
    assert 'data-view="bin"' in dom and 'data-ready="true"' in dom, dom[:2000]
    counts = data_rows(dom)
    assert counts["history-table"] == len(page["status_history"]) and counts["recent-table"] == 20, counts
    assert counts["bin-series-chart"] == len({p["bucket_start"] for p in page["series"]}) > 10
    assert f'<span id="bin-name">{device}</span>' in dom


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


LAYOUT_PROBE = """JSON.stringify({
  width: innerWidth,
  scrollWidth: document.documentElement.scrollWidth,
  rows: Number(document.querySelector("#bins-table").dataset.rows),
  sticking_out: [...document.querySelectorAll(".card, .kpi, canvas, .ranking li")]
    .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5)
    .map((e) => e.id || e.className),
})"""


# 1400 px and a phone: test_scenario_fleet_shows_every_state_and_nothing_is_cut_off
@pytest.mark.parametrize(("width", "query"), [(1920, "?theme=dark")])
def test_no_sideways_scroll_and_a_screenshot_at_each_width(scenario_db, tmp_path, width, query):
    """At desktop and phone widths (the viewport emulated exactly, as on a phone) nothing is
    wider than the window: the wide table scrolls inside its card, charts fit their cards. And
    Chromium takes a screenshot of it (what docs/img holds, from the same demo fleet)."""
    import json

    url = copy_database(scenario_db[0], tmp_path / "fleet.db")
    with serving(url) as base:
        layout = json.loads(evaluate_at(base + "/" + query, tmp_path / "probe", width, 1200, LAYOUT_PROBE))
        shot = screenshot(base + "/" + query, tmp_path / "shot.png", tmp_path / "chromium", width, 1200)
    assert layout["width"] == width and layout["rows"] == 42, layout
    assert layout["scrollWidth"] <= width and not layout["sticking_out"], layout
    assert png_size(shot) == (width, 1200)


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
    assert '<div class="name">Items</div><div class="value">60</div>' in dom


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


@pytest.fixture(scope="module")
def scenario_db(tmp_path_factory):
    """The every-state scenario fleet, stored once for the module (each test copies it; the
    suite runs a file's tests one after another, so it ends less than a minute before each)."""
    path = tmp_path_factory.mktemp("scenario") / "fleet.db"
    return path, scenario_database(path)


SCENARIO_PROBE = """const tile = [...document.querySelectorAll(".kpi")]
  .find((k) => k.textContent.startsWith("Need attention"));
const scroller = document.querySelector("#bins-scroll");
JSON.stringify({
  width: innerWidth,
  scrollWidth: document.documentElement.scrollWidth,
  rows: Number(document.querySelector("#bins-table").dataset.rows),
  sticking_out: [...document.querySelectorAll(".card, .kpi, canvas, .ranking li, #health")]
    .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5).map((e) => e.id || e.className),
  table_overflows: scroller.scrollWidth > scroller.clientWidth,
  hint_shown: getComputedStyle(document.querySelector(".table-hint")).display !== "none",
  bin_column_sticks: getComputedStyle(document.querySelector("#bins-table td")).position,
  attention: [...document.querySelectorAll("#attention li")].map((li) => li.textContent),
  tile: tile.querySelector(".sub").textContent,
  tile_value: Number(tile.querySelector(".value").textContent),
  pills: [...document.querySelectorAll("#bins-table .pill")].map((p) => p.textContent),
  health: document.body.dataset.health,
})"""


@pytest.mark.parametrize("width", [1400, 390])
def test_scenario_fleet_shows_every_state_and_nothing_is_cut_off(scenario_db, tmp_path, width):
    """The scenario's every state on one page: offline, stale, camera down with the bin's
    reason, results missing, uncertain, slow inference, a growing queue, no status. At 1400 px
    the whole table fits its card; on a phone it scrolls inside it, with a hint and the bin's
    name kept in view. The "Need attention" tile's parts add up to its number."""
    import base64
    import json

    path, scenario = scenario_db
    roles = scenario.roles
    database = copy_database(path, tmp_path / "fleet.db")
    with serving(database) as base, DevToolsPage(tmp_path / "chromium", width, 1900) as page:
        page.open(base + "/")
        probe = json.loads(page.evaluate(SCENARIO_PROBE))
        shot = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
    (tmp_path / "scenario.png").write_bytes(shot)
    assert png_size(tmp_path / "scenario.png") == (width, 1900)
    assert probe["scrollWidth"] <= width and not probe["sticking_out"], probe
    assert probe["rows"] == 42 and probe["health"] == "report", probe
    if width >= 1100:
        assert not probe["table_overflows"] and not probe["hint_shown"], probe
    else:
        assert probe["table_overflows"] and probe["hint_shown"] and probe["bin_column_sticks"] == "sticky", (
            probe
        )
    why = {line.split(" ", 1)[0].strip(): line for line in probe["attention"]}
    why = {
        device: next((t for t in probe["attention"] if t.startswith(device)), "") for device in roles.values()
    }
    assert "offline, last seen 4 h ago" in why[roles["offline"]], probe["attention"]
    assert "silent since 3 h" in why[roles["stale"]]
    assert re.search(
        r"camera down (39|40|41) min: cannot open /dev/video0: No such device", why[roles["camera_down"]]
    )
    assert "4 results missing" in why[roles["missing"]]
    assert re.search(r"\d+ % uncertain", why[roles["uncertain"]])
    assert re.search(r"slow inference: p95 \d{3} ms", why[roles["slow"]])
    assert "queue growing: 80 waiting" in why[roles["queue"]]
    assert "no status message" in why[roles["unknown"]]
    for healthy in ("outage", "camera_recovered"):  # recovered: nothing to do
        assert why[roles[healthy]] == "", why[roles[healthy]]
    parts = [int(part.split(" ", 1)[0]) for part in probe["tile"].split(" · ")]
    assert sum(parts) == probe["tile_value"] == len(probe["attention"]) == 8, probe
    assert "null" not in " ".join(probe["pills"]) and probe["pills"].count("camera down") == 1


def test_attention_thresholds_are_settings_the_page_and_the_api_share(scenario_db, tmp_path):
    """[report] thresholds raised so far that the slow and the dirty-lens bins are fine: the
    API's statuses and the page's "Needs attention" both stop naming them; defaults name them."""
    import json

    path, scenario = scenario_db
    slow, lens = scenario.roles["slow"], scenario.roles["uncertain"]
    lenient = ReportSection(slow_inference_ms=5000, uncertain_attention=0.9, refresh_s=7)
    probe = "JSON.stringify([...document.querySelectorAll('#attention li')].map((li) => li.textContent))"
    named = {}
    for name, settings in (("default", ReportSection()), ("lenient", lenient)):
        url = copy_database(path, tmp_path / f"{name}.db")
        with serving(url, report=settings) as base, DevToolsPage(tmp_path / name, 1400, 1000) as page:
            report = requests.get(f"{base}/api/report", timeout=10).json()
            health = requests.get(f"{base}/api/health", timeout=10).json()
            page.open(base + "/")
            named[name] = " ".join(json.loads(page.evaluate(probe)))
        status = {s["device_id"]: s for s in report["status"]}
        assert report["attention"]["slow_inference_ms"] == settings.slow_inference_ms
        assert health["refresh_s"] == settings.refresh_s
        assert status[slow]["slow_inference"] is (name == "default")
    assert slow in named["default"] and lens in named["default"], named["default"]
    assert slow not in named["lenient"] and lens not in named["lenient"], named["lenient"]
    assert scenario.roles["offline"] in named["lenient"]  # the other reasons still count


def test_killing_the_broker_turns_the_page_degraded_within_one_refresh(mosquitto, tmp_path):
    """A real aggregator on a real Mosquitto: the page says live; the broker is killed; the
    next refresh shows the page degraded (and /api/health answers 503)."""
    import time

    from tests.test_fleet_ingest import aggregator, simulate

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    running = aggregator(mosquitto, url, "agg-web-health").start()
    app = create_app(lambda: open_database(url, migrate=False), ReportSection(), running.stats.snapshot)
    app.register_blueprint(labelling_blueprint(SampleStore(tmp_path / "samples")))
    server = BackgroundServer(app, HttpSection(port=0)).start()
    try:
        simulate(mosquitto, count=60, bins=4)
        assert running.wait_idle()
        with (
            DevToolsPage(tmp_path / "chromium", 1400, 1000) as page,
            DevToolsPage(tmp_path / "label", 1400, 1000) as label,
        ):
            page.open(server.url + "/")
            label.call("Page.navigate", url=server.url + "/label")
            assert page.evaluate("document.body.dataset.health") == "ok"
            line = page.evaluate("document.querySelector('#health').textContent")
            assert line.startswith("Ingest live · broker connected · writer running") and "data as of" in line
            assert label.wait_for("document.body.dataset.health === 'ok'")  # the label page: the same line
            mosquitto.stop()
            deadline = time.monotonic() + 30
            while running.stats.connected:  # the aggregator noticed the broker is gone
                assert time.monotonic() < deadline, "the aggregator never noticed"
                time.sleep(0.1)
            page.evaluate("refresh()")  # one refresh, as the page's timer would do
            assert page.evaluate("document.body.dataset.health") == "degraded"
            line = page.evaluate("document.querySelector('#health').textContent")
            assert "Data not updating: not connected to the MQTT broker" in line, line
            assert page.evaluate("getComputedStyle(document.querySelector('main')).filter") != "none"
            label.evaluate("watchHealth()")  # the label page's own refresh
            assert label.wait_for("document.body.dataset.health === 'degraded'")
            line = label.evaluate("document.querySelector('#health').textContent")
            assert "Data not updating: not connected to the MQTT broker" in line, line
        health = requests.get(f"{server.url}/api/health", timeout=10)
        assert health.status_code == 503 and health.json()["ingest"]["connected"] is False
    finally:
        server.stop()
        running.stop()
