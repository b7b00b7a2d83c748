"""The bin page and /metrics of `ecolens run` over real HTTP: the daemon on the sample clip
(looping, in real time), the real model, a real Mosquitto, promtool and headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from ecolens.core.errors import ConfigError
from ecolens.core.http.keys import hash_key
from ecolens.edge.daemon.config import load_daemon_config

from tests.support.bin_daemon import Running, write_config
from tests.support.chromium import DevToolsPage, evaluate_at, render, screenshot
from tests.support.promtool import promtool_check, samples

KEY = "bin-installer-key-0123456789"


@pytest.fixture
def running(tmp_path, mosquitto, reference_model):
    bin_daemon = Running(write_config(tmp_path, mosquitto, reference_model))
    try:
        yield bin_daemon
    finally:
        bin_daemon.stop()


def test_state_frame_crops_and_metrics_over_http(running):
    running.wait_items(2)
    state = requests.get(f"{running.url}/api/state", timeout=10).json()
    assert state["device_id"] == "bin-web" and state["roi"] is None and state["can_save_roi"]
    assert len(state["results"]) >= 2 and state["stats"]["items"] >= 2
    assert state["stats"]["mqtt_connected"] is True and state["model"]["version"]

    frame = requests.get(f"{running.url}/frame.jpg", timeout=10)
    assert frame.headers["Content-Type"] == "image/jpeg"
    pixels = cv2.imdecode(np.frombuffer(frame.content, np.uint8), cv2.IMREAD_COLOR)
    width, height = map(int, frame.headers["X-Frame-Size"].split("x"))
    assert pixels.shape[1] == min(width, 960) and pixels.std() > 5  # a real picture, not blank

    newest = state["results"][0]
    crop = requests.get(f"{running.url}/crop/{newest['event_id']}.jpg", timeout=10)
    assert crop.status_code == 200 and cv2.imdecode(np.frombuffer(crop.content, np.uint8), 1) is not None
    assert requests.get(f"{running.url}/crop/nope.jpg", timeout=10).status_code == 404
    # unknown paths and wrong methods: the one JSON error body, never Flask's HTML page
    unknown = requests.get(f"{running.url}/no/such/page", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    wrong = requests.delete(f"{running.url}/api/state", timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"] and "GET" in wrong.json()["error"]["message"]

    text = requests.get(f"{running.url}/metrics", timeout=10).text
    promtool_check(text)
    values = samples(text)
    published = values[("ecolens_daemon_published_total", ())]
    items = sum(v for (name, _), v in values.items() if name == "ecolens_daemon_items_total")
    assert items >= published >= 2
    # A scrape reads the histograms before the counters, not in one moment: an item classified
    # or acknowledged in between is in the counter and not yet in its histogram (never the reverse).
    assert items - 1 <= values[("ecolens_daemon_inference_duration_seconds_count", ())] <= items
    assert values[("ecolens_daemon_frame_to_puback_seconds_count", ())] >= published - 1
    assert values[("ecolens_daemon_frames_total", ())] > items
    assert values[("ecolens_daemon_mqtt_connected", ())] == 1
    assert values[("ecolens_daemon_camera_state", (("state", "up"),))] == 1
    assert values[("ecolens_daemon_camera_state", (("state", "down"),))] == 0
    assert values[("ecolens_daemon_unqueued_total", ())] == 0
    assert values[("ecolens_daemon_queue_depth", ())] >= 0
    # every bin series the Grafana dashboard draws is in this real scrape
    dashboard = json.loads((Path(__file__).resolve().parents[1] / "docs" / "grafana-fleet.json").read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", []))
    drawn = set(re.findall(r"\becolens_daemon_[a-z0-9_]+", exprs))
    assert len(drawn) >= 8 and not drawn - {name for name, _ in values}, drawn - {name for name, _ in values}
    model_labels = [labels for (name, labels), _ in values.items() if name == "ecolens_daemon_model_info"]
    assert dict(model_labels[0])["version"] == state["model"]["version"]


def test_nothing_is_encoded_while_nobody_watches(tmp_path, mosquitto, reference_model):
    """The frame loop only keeps references: no JPEG is made until a page asks, then one per
    half ``frame_interval_s`` however often it asks, and a crop once."""
    running = Running(write_config(tmp_path, mosquitto, reference_model, speed=2.0, frame_interval_s=20))
    try:
        check_no_encoding_until_asked(running)
    finally:
        running.stop()


def check_no_encoding_until_asked(running: Running) -> None:
    running.wait_items(2)
    assert running.daemon.stats.frames_read > 30 and running.daemon.live.encodes == 0
    first = requests.get(f"{running.url}/frame.jpg", timeout=10)
    again = requests.get(f"{running.url}/frame.jpg", timeout=10)
    assert first.status_code == again.status_code == 200 and running.daemon.live.encodes == 1
    newest = requests.get(f"{running.url}/api/state", timeout=10).json()["results"][0]["event_id"]
    for _ in range(2):
        assert requests.get(f"{running.url}/crop/{newest}.jpg", timeout=10).status_code == 200
    assert running.daemon.live.encodes == 2


def test_region_saved_to_the_config_and_applied_by_reload(running, tmp_path):
    path = running.daemon.config_path
    saved = requests.post(f"{running.url}/api/roi", json={"roi": [0.1, 0.2, 0.9, 0.95]}, timeout=10)
    assert saved.status_code == 200, saved.text
    assert saved.json()["applied"] is True
    assert running.daemon.config.detect.roi == (0.1, 0.2, 0.9, 0.95)
    assert "roi = [0.1000, 0.2000, 0.9000, 0.9500]" in path.read_text()
    assert load_daemon_config(path).model.path is not None  # the rest of the file is kept

    for bad, message in (
        ([0.9, 0.2, 0.1, 0.95], "0 <= x0 < x1 <= 1"),
        ([0.1, 0.2, 0.9], "four numbers"),
        ("whole", "four numbers"),
    ):
        refused = requests.post(f"{running.url}/api/roi", json={"roi": bad}, timeout=10)
        assert refused.status_code == 400 and message in refused.json()["error"]["message"], refused.text
    assert "roi = [0.1000, 0.2000, 0.9000, 0.9500]" in path.read_text()  # unchanged
    form = requests.post(f"{running.url}/api/roi", data={"roi": "0,0,1,1"}, timeout=10)
    assert form.status_code == 415  # no cross-site form posts

    whole = requests.post(f"{running.url}/api/roi", json={"roi": None}, timeout=10)
    assert whole.json()["applied"] is True and running.daemon.config.detect.roi is None
    assert "roi =" not in path.read_text()


def test_page_in_headless_chromium_with_a_screenshot(running, tmp_path):
    running.wait_items(3)
    requests.post(f"{running.url}/api/roi", json={"roi": [0.05, 0.1, 0.95, 0.95]}, timeout=10)
    dom = render(running.url + "/", tmp_path / "chromium", 1400, 900)
    assert 'data-ready="true"' in dom, dom[:2000]
    assert '<strong id="device">bin-web</strong>' in dom
    assert int(re.search(r'id="results" data-rows="(\d+)"', dom).group(1)) >= 3
    assert re.search(r'<rect id="roi" class="roi" x="50" y="100" width="900" height="850"', dom), dom
    assert "MQTT connected" in dom and re.search(r'<img id="frame" [^>]*src="blob:', dom)
    shot = screenshot(running.url + "/", tmp_path / "bin.png", tmp_path / "chromium", 1400, 900)
    assert shot.stat().st_size > 20_000  # docs/img/bin-page.png: tests/support/bin_daemon.py


def test_keys_and_lan_refusal(tmp_path, mosquitto, reference_model):
    with pytest.raises(ConfigError, match="refusing to serve the bin page on 0.0.0.0 without API keys"):
        Running(write_config(tmp_path, mosquitto, reference_model, host="0.0.0.0"))
    config = write_config(
        tmp_path, mosquitto, reference_model, host="0.0.0.0", auth={"key_hashes": [hash_key(KEY)]}
    )
    guarded = Running(config)
    try:
        base = guarded.url.replace("0.0.0.0", "127.0.0.1")
        for path in ("/", "/api/state", "/frame.jpg", "/metrics"):
            assert requests.get(base + path, timeout=10).status_code == 401, path
        assert requests.post(base + "/api/roi", json={"roi": None}, timeout=10).status_code == 401
        ok = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        assert ok.status_code == 200 and "ecolens_daemon_frames_total" in ok.text
        assert requests.get(base + "/", auth=("installer", KEY), timeout=10).status_code == 200
    finally:
        guarded.stop()


def test_region_drawn_with_the_mouse_is_saved_and_applied(running, tmp_path):
    """The editor end to end in a real browser: Edit region, a mouse drag on the picture, Save;
    the daemon runs with the new region and the config file holds it."""
    running.wait_items(1)
    with DevToolsPage(tmp_path / "cdp", 1200, 900) as page:
        page.open(running.url + "/")
        page.wait_for("document.getElementById('frame').naturalWidth > 0")
        area = json.loads(
            page.evaluate("JSON.stringify(document.getElementById('overlay').getBoundingClientRect())")
        )
        page.evaluate("document.getElementById('edit').click()")
        left, top, width, height = area["left"], area["top"], area["width"], area["height"]
        page.drag((left + 0.2 * width, top + 0.25 * height), (left + 0.8 * width, top + 0.9 * height))
        drawn = page.evaluate("document.getElementById('roi-text').textContent")
        page.evaluate("document.getElementById('save').click()")
        saved = page.wait_for(
            "!document.getElementById('saved').hidden && document.getElementById('saved').textContent"
        )
    assert drawn == "[0.20, 0.25, 0.80, 0.90]", drawn
    assert saved.startswith("Saved [0.20, 0.25, 0.80, 0.90]") and "applied" in saved, saved
    roi = running.daemon.config.detect.roi
    assert roi is not None and max(abs(a - b) for a, b in zip(roi, (0.2, 0.25, 0.8, 0.9))) < 0.005
    assert "roi = [0.2" in running.daemon.config_path.read_text()


def test_bin_page_fits_a_phone(running, tmp_path):
    probe = """JSON.stringify({width: innerWidth, scrollWidth: document.documentElement.scrollWidth,
      sticking_out: [...document.querySelectorAll('.card, img, svg, dl')]
        .filter((e) => e.getBoundingClientRect().right > innerWidth + 0.5)
        .map((e) => e.id || e.tagName)})"""
    layout = json.loads(evaluate_at(running.url + "/", tmp_path / "phone", 390, 900, probe))
    assert layout["width"] == 390 and layout["scrollWidth"] <= 390 and not layout["sticking_out"], layout


def test_a_config_the_service_may_not_write_gets_the_line_to_paste(tmp_path, mosquitto, reference_model):
    """As under the shipped unit (/etc read-only for the daemon): one clear answer with the
    roi line, nothing changed. The folder is made immutable (root ignores permission bits)."""
    import subprocess

    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    config = write_config(config_dir, mosquitto, reference_model, state=tmp_path)
    before = config.read_text()
    bin_daemon = Running(config)
    locked = subprocess.run(["chattr", "+i", str(config_dir)], capture_output=True).returncode == 0
    try:
        if not locked:
            pytest.skip("chattr +i is not permitted here")
        answer = requests.post(f"{bin_daemon.url}/api/roi", json={"roi": [0.1, 0.2, 0.9, 0.95]}, timeout=10)
    finally:
        subprocess.run(["chattr", "-i", str(config_dir)], capture_output=True)
        bin_daemon.stop()
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "cannot write" in message and "roi = [0.1000, 0.2000, 0.9000, 0.9500]" in message, message
    assert config.read_text() == before and bin_daemon.daemon.config.detect.roi is None
