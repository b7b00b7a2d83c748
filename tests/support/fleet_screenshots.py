"""Regenerates the dashboard screenshots in docs/img from the demo fleet:
``.venv/bin/python -m tests.support.fleet_screenshots`` (headless Chromium, no network)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ecolens.fleet.config import HttpSection, ReportSection
from ecolens.fleet.storage import open_database
from ecolens.fleet.web import BackgroundServer, create_app

from tests.support.chromium import screenshot
from tests.support.fleet_data import demo_fleet

# name: (path and query, width, height)
SHOTS = {
    "fleet-1400": ("/", 1400, 1900),
    "fleet-1920": ("/", 1920, 1250),
    "fleet-1400-dark": ("/?theme=dark", 1400, 1900),
    "fleet-phone": ("/", 390, 2400),
    "fleet-bin": ("/#/bin/bin-004", 1400, 1000),
    "fleet-bin-dark-phone": ("/?theme=dark#/bin/bin-004", 390, 1500),
}


def take(out_dir: Path, work: Path) -> list[Path]:
    url = f"sqlite:///{work / 'fleet.db'}"
    demo_fleet(url)
    app = create_app(lambda: open_database(url, migrate=False), ReportSection())
    server = BackgroundServer(app, HttpSection(port=0)).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        return [
            screenshot(base + path, out_dir / f"{name}.png", work / "chromium", width, height)
            for name, (path, width, height) in SHOTS.items()
        ]
    finally:
        server.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for path in take(target, Path(work)):
            print(path)
