"""Debian's headless Chromium, as the dashboard tests and the docs' screenshots use it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--hide-scrollbars",
)  # fmt: skip


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium not installed: apt-get install chromium")


def render(page_url: str, profile: Path, width: int = 1400, height: int = 1000) -> str:
    """The page's DOM after its scripts ran, as a real headless Chromium sees it."""
    command = [
        chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
        "--virtual-time-budget=10000", "--dump-dom", page_url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=90).stdout


def screenshot(page_url: str, out: Path, profile: Path, width: int, height: int) -> Path:
    """A PNG of the first ``height`` pixels of the page at ``width`` CSS pixels."""
    command = [
        chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
        "--virtual-time-budget=10000", f"--screenshot={out}", page_url,
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)
    return out


class DevToolsPage:
    """One page of a headless Chromium driven over the DevTools protocol, its viewport emulated
    at exactly ``width`` x ``height`` CSS pixels as a phone or desktop would have it (a headless
    window cannot be narrower than 500 px, so --window-size cannot test a phone)."""

    def __init__(self, profile: Path, width: int, height: int, timeout: float = 60) -> None:
        self.profile, self.width, self.height, self.timeout = profile, width, height, timeout

    def __enter__(self) -> DevToolsPage:
        import json
        import time
        import urllib.request

        from websockets.sync.client import connect

        self.profile.mkdir(parents=True, exist_ok=True)
        command = [chromium(), *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0"]
        self._browser = subprocess.Popen(
            [*command, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            target = next(t for t in json.load(answer) if t["type"] == "page")
        self._socket = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self._ids = iter(range(1, 1_000_000))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width, height=self.height, deviceScaleFactor=1, mobile=self.width < 600,
        )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        self._socket.close()
        self._browser.terminate()
        try:
            self._browser.wait(10)
        except subprocess.TimeoutExpired:
            self._browser.kill()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        import json

        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=self.timeout))
            if message.get("id") == number:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Polls until ``expression`` is truthy; returns its value."""
        import time

        deadline = time.monotonic() + (timeout or self.timeout)
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.2)
        return value

    def open(self, url: str) -> None:
        """Navigates and waits for the page's own readiness flag (``body[data-ready]``)."""
        import time

        self.call("Page.navigate", url=url)
        self.wait_for("document.body && ['true', 'error'].includes(document.body.dataset.ready)")
        time.sleep(0.5)  # a frame for the charts to settle

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        """A real mouse drag (pressed, moved, released) in CSS pixels of the viewport."""
        x0, y0 = start
        x1, y1 = end
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, button="left", clickCount=1)
        for i in range(1, steps + 1):
            x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
            self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left", buttons=1)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, button="left", clickCount=1)


def evaluate_at(page_url: str, profile: Path, width: int, height: int, expression: str) -> Any:
    """``expression``'s value once the page at ``page_url`` is ready, at exactly that viewport."""
    with DevToolsPage(profile, width, height) as page:
        page.open(page_url)
        return page.evaluate(expression)
