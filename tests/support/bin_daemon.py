"""A bin daemon with its page, in a thread, on the looping sample clip: for the page's tests
and its screenshot in docs/daemon.md (``.venv/bin/python -m tests.support.bin_daemon``, which
needs mosquitto)."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from ecolens.edge.daemon.app import Daemon
from ecolens.edge.daemon.config import load_daemon_config

from tests.support.daemon_helpers import clip_path
from tests.support.toml_files import write_toml


def write_config(
    tmp_path: Path, broker, model: Path, speed: float = 1.0, state: Path | None = None, **web
) -> Path:
    return write_toml(
        tmp_path / "edge.toml",
        {
            "model": {"path": model},
            "mqtt": {"port": broker.port},
            "source": {"uri": clip_path(), "loop": True, "speed": speed},
            "publish": {"device_id": "bin-web", "stats_interval_s": 0},
            "store": {"path": (state or tmp_path) / "queue.sqlite3"},
            "service": {"drain_timeout_s": 5, "watch_interval_s": 0},
            "web": {"enabled": True, "port": 0, "frame_interval_s": 0.5, **web},
        },
    )


class Running:
    """The daemon in a thread, with its page's address."""

    def __init__(self, config_path: Path) -> None:
        self.daemon = Daemon(load_daemon_config(config_path), config_path)
        self.daemon.start()  # here, so a refused start-up raises in the test
        self.thread = threading.Thread(target=self._loop)
        self.thread.start()
        self.url = self.daemon.web.url

    def _loop(self) -> None:
        try:
            self.daemon.loop()
        finally:
            self.daemon.shutdown()

    def wait_items(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.daemon.stats.published < count:
            assert time.monotonic() < deadline, f"only {self.daemon.stats.published} results published"
            time.sleep(0.2)

    def stop(self) -> None:
        self.daemon.stop_event.set()
        self.thread.join(30)


def docs_screenshot(target: Path) -> None:
    """At half speed, right after an item's result: the item is still in the picture."""
    from ecolens.bench.mosquitto import MosquittoBroker
    from ecolens.models import reference_tflite

    from tests.support.chromium import screenshot

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        broker = MosquittoBroker(folder / "mosquitto").start()
        running = Running(write_config(folder, broker, reference_tflite(), speed=0.5))
        try:
            import requests

            requests.post(f"{running.url}/api/roi", json={"roi": [0.08, 0.12, 0.92, 0.96]}, timeout=10)
            running.wait_items(4, timeout=120)
            published = running.daemon.stats.published
            running.wait_items(published + 1, timeout=60)
            screenshot(running.url + "/", target, folder / "chromium", 1400, 900)
        finally:
            running.stop()
            broker.stop()


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img/bin-page.png")
    docs_screenshot(out)
    print(out)
