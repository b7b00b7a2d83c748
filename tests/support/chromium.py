"""Debian's headless Chromium, as the dashboard tests and the docs' screenshots use it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
