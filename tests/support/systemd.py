"""Checks every shipped systemd unit must pass, with the real `systemd-analyze`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSTALL_PREFIX = "/opt/ecolens/venv"


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed")
    return found


def verify(unit: Path, workdir: Path) -> None:
    """`systemd-analyze verify` without complaints. It checks that ExecStart exists, so the
    copy it reads points the install prefix at this environment's venv."""
    text = unit.read_text()
    assert INSTALL_PREFIX in text
    assert Path(sys.prefix, "bin", "ecolens").exists()
    copy = workdir / unit.name
    copy.write_text(text.replace(INSTALL_PREFIX, sys.prefix))
    done = subprocess.run(
        [systemd_analyze(), "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def exposure(unit: Path) -> float:
    """`systemd-analyze security --offline=true`'s overall exposure (0 safest .. 10)."""
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    return float(match.group(1))


def settings(unit: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, in order (keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if re.match(r"^\w+=", line):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found
