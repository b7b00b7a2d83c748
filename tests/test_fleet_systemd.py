"""The aggregator's systemd unit and the example files it reads: the unit verifies and is
hardened (exposure 2.0 or lower); the examples hold only settings the aggregator accepts."""

from __future__ import annotations

import re
from pathlib import Path

from ecolens.fleet.config import load_fleet_config

from tests.support import systemd

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "ecolens-aggregate.service"


def test_unit_verifies(tmp_path):
    systemd.verify(UNIT, tmp_path)


def test_security_exposure_is_at_most_2():
    assert systemd.exposure(UNIT) <= 2.0


def test_unit_runs_unprivileged_with_only_its_state_directory_writable():
    settings = {key: values[-1] for key, values in systemd.settings(UNIT).items()}
    assert settings["DynamicUser"] == "yes" and settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict" and settings["Restart"] == "on-failure"
    assert settings["StateDirectory"] == "ecolens-fleet"
    assert "aggregate --config /etc/ecolens/fleet.toml" in settings["ExecStart"]
    assert settings["EnvironmentFile"] == "-/etc/ecolens/fleet.env"


def test_example_config_loads_and_keeps_the_database_in_the_state_directory():
    config = load_fleet_config(SYSTEMD / "fleet.example.toml")
    assert config.storage.url == "sqlite:////var/lib/ecolens-fleet/fleet.db"
    assert config.http.host == "127.0.0.1" and not config.auth.enabled  # safe without keys


def test_env_example_only_holds_settings_the_aggregator_understands(monkeypatch):
    """Every variable shown (all commented out: secrets differ per site) is accepted, and the
    LAN dashboard it describes passes the start-up check because it comes with a key."""
    from ecolens.core.http.exposure import check_exposure
    from ecolens.core.http.keys import KeyStore

    shown = {}
    for line in (SYSTEMD / "ecolens-aggregate.env.example").read_text().splitlines():
        match = re.match(r"^#\s*(ECOLENS_\w+)=(.*)$", line.strip())
        if match:
            value = match.group(2)
            shown[match.group(1)] = "k" * 32 if value.startswith("<") else value.replace("<password>", "pw")
        assert not re.match(r"^ECOLENS_", line), f"active secret in the example: {line}"
    assert {"ECOLENS_MQTT__PASSWORD", "ECOLENS_STORAGE__URL", "ECOLENS_AUTH__KEYS"} <= shown.keys()
    for name, value in shown.items():
        monkeypatch.setenv(name, value)
    config = load_fleet_config(SYSTEMD / "fleet.example.toml")
    assert config.storage.url.startswith("postgresql://") and config.http.host == "0.0.0.0"
    check_exposure(config.http, KeyStore.from_settings(config.auth).enabled, "the dashboard", "http")
