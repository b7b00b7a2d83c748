"""The API's systemd unit: `systemd-analyze verify` accepts it and its offline security
exposure is 2.0 or lower."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "ecolens-api.service"
INSTALLED_ECOLENS = "/opt/ecolens/venv/bin/ecolens"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def test_unit_verifies(tmp_path):
    # verify checks that ExecStart exists: point it at this environment's ecolens
    text = UNIT.read_text()
    assert INSTALLED_ECOLENS in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(INSTALLED_ECOLENS, str(Path(sys.executable).parent / "ecolens")))
    completed = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert "ecolens-api.service" not in completed.stderr, completed.stderr


def test_security_exposure_is_at_most_2():
    completed = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", completed.stdout)
    assert match, completed.stdout + completed.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_runs_unprivileged_read_only_and_restarts():
    settings = dict(line.split("=", 1) for line in UNIT.read_text().splitlines() if re.match(r"^\w+=", line))
    assert settings["DynamicUser"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["Restart"] == "on-failure"
    assert settings["NoNewPrivileges"] == "yes"
    assert "api.toml" in settings["ExecStart"] and settings["EnvironmentFile"].endswith(".env")


def test_env_example_only_holds_settings_the_api_understands():
    """Every variable the example shows (commented or not) is a setting the API accepts, and
    no key is active by default: a shipped key would be a key everybody knows."""
    import re

    from ecolens.edge.api.settings import load_api_config

    example = REPO / "systemd" / "ecolens-api.env.example"
    shown, active = {}, {}
    for line in example.read_text().splitlines():
        match = re.match(r"^(#\s*)?(ECOLENS_\w+)=(.*)$", line.strip())
        if match:
            value = match.group(3)
            shown[match.group(2)] = "k" * 32 if value.startswith("<") else value
            if not match.group(1):
                active[match.group(2)] = value
    assert "ECOLENS_AUTH__KEYS" in shown
    assert "ECOLENS_AUTH__KEYS" not in active
    config = load_api_config(environ=shown)
    assert config.auth.enabled
