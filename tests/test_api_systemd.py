"""The API's systemd unit: `systemd-analyze verify` accepts it and its offline security
exposure is 2.0 or lower."""

from __future__ import annotations

from pathlib import Path

from tests.support import systemd

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "ecolens-api.service"


def test_unit_verifies(tmp_path):
    systemd.verify(UNIT, tmp_path)


def test_security_exposure_is_at_most_2():
    assert systemd.exposure(UNIT) <= 2.0


def test_unit_runs_unprivileged_read_only_and_restarts():
    settings = {key: values[-1] for key, values in systemd.settings(UNIT).items()}
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
