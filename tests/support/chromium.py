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


def evaluate_at(
    page_url: str, profile: Path, width: int, height: int, expression: str, timeout: float = 60
) -> Any:
    """``expression``'s value in the page once it is ready (``body[data-ready]`` set), the
    viewport emulated at exactly ``width`` x ``height`` CSS pixels as a phone would have it
    (a headless window cannot be narrower than 500 px, so --window-size cannot test a phone).
    Drives Chromium over the DevTools protocol."""
    import json
    import time
    import urllib.request

    from websockets.sync.client import connect

    profile.mkdir(parents=True, exist_ok=True)
    command = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
    browser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            target = next(t for t in json.load(answer) if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as socket:
            ids = iter(range(1, 1_000_000))

            def call(method: str, **params: Any) -> dict[str, Any]:
                number = next(ids)
                socket.send(json.dumps({"id": number, "method": method, "params": params}))
                while True:
                    message = json.loads(socket.recv(timeout=timeout))
                    if message.get("id") == number:
                        assert "error" not in message, message
                        return message["result"]

            call(
                "Emulation.setDeviceMetricsOverride",
                width=width, height=height, deviceScaleFactor=1, mobile=width < 600,
            )  # fmt: skip
            call("Page.navigate", url=page_url)
            ready = "document.body && document.body.dataset.ready"
            while (state := call("Runtime.evaluate", expression=ready)["result"].get("value")) not in (
                "true", "error",
            ):  # fmt: skip
                assert time.monotonic() < deadline, f"page not ready: {state}"
                time.sleep(0.2)
            time.sleep(0.5)  # a frame for the charts to settle
            result = call("Runtime.evaluate", expression=expression, returnByValue=True)
            return result["result"].get("value")
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
