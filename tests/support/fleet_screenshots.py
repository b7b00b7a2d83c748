"""Regenerates the dashboard screenshots in docs/img from the every-state scenario fleet
(``ecolens simulate --scenario``, stored at its own times): ``.venv/bin/python -m
tests.support.fleet_screenshots docs/img``. A real aggregator on a real Mosquitto serves them
(the health line is live); the last shot is taken after the broker was stopped (degraded).
Headless Chromium over the DevTools protocol, the viewport emulated exactly (phones too)."""

from __future__ import annotations

import base64
import sys
import tempfile
import time
from pathlib import Path

from ecolens.bench.mosquitto import MosquittoBroker
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.config import HttpSection, ReportSection, SubscriberSection
from ecolens.fleet.storage import open_database
from ecolens.fleet.subscriber import Aggregator
from ecolens.fleet.web import BackgroundServer, create_app

from tests.support.chromium import DevToolsPage
from tests.support.fleet_scenario import scenario_database

# name: (path and query, width, height)
SHOTS = {
    "fleet-1400": ("/", 1400, 2300),
    "fleet-1920": ("/", 1920, 1500),
    "fleet-1400-dark": ("/?theme=dark", 1400, 1500),
    "fleet-phone": ("/", 390, 2600),
    "fleet-bin": ("/#/bin/bin-011", 1400, 1100),
    "fleet-bin-dark-phone": ("/?theme=dark#/bin/bin-024", 390, 1700),
}


def shoot(url: str, out: Path, profile: Path, width: int, height: int) -> Path:
    with DevToolsPage(profile, width, height) as page:
        page.open(url)
        time.sleep(0.5)
        out.write_bytes(base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"]))
    return out


def take(out_dir: Path, work: Path) -> list[Path]:
    database = work / "fleet.db"
    scenario_database(database)
    url = f"sqlite:///{database}"
    broker = MosquittoBroker(work / "mosquitto").start()
    aggregator = Aggregator(
        BrokerSection(host=broker.host, port=broker.port), SubscriberSection(),
        lambda: open_database(url, migrate=False), client_id="screenshots",
    ).start()  # fmt: skip
    app = create_app(lambda: open_database(url, migrate=False), ReportSection(), aggregator.stats.snapshot)
    server = BackgroundServer(app, HttpSection(port=0)).start()
    try:
        shots = [
            shoot(server.url + path, out_dir / f"{name}.png", work / f"chromium-{name}", width, height)
            for name, (path, width, height) in SHOTS.items()
        ]
        broker.stop()
        while aggregator.stats.connected:
            time.sleep(0.1)
        degraded = out_dir / "fleet-degraded.png"
        shots.append(shoot(server.url + "/", degraded, work / "chromium-degraded", 1400, 700))
        return shots
    finally:
        server.stop()
        aggregator.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as work:
        for path in take(target, Path(work)):
            print(path)
