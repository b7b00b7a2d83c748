"""`--validate-config` on run, serve and aggregate, as real processes: a misspelt key gets a
"did you mean", a named file that is missing is reported, a good file says OK; secrets never
printed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.daemon_helpers import REPO


def ecolens(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("command", "toml", "message"),
    [
        ("run", "[mqtt]\nprot = 1883\n", "mqtt.prot: unknown setting (did you mean 'port'?)"),
        ("run", "[detect]\nrio = [0, 0, 1, 1]\n", "detect.rio: unknown setting (did you mean 'roi'?)"),
        ("serve", "[server]\nworkres = 2\n", "server.workres: unknown setting (did you mean 'workers'?)"),
        ("aggregate", "[http]\nhots = '0.0.0.0'\n", "http.hots: unknown setting (did you mean 'host'?)"),
        ("aggregate", "[storage]\nurll = 'sqlite:///x.db'\n", "did you mean 'url'?"),
    ],
)
def test_misspelt_key_gets_a_suggestion(tmp_path, command, toml, message):
    config = tmp_path / "c.toml"
    config.write_text(toml)
    done = ecolens(command, "--config", str(config), "--validate-config")
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_unrelated_key_gets_no_guess(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[mqtt]\nzebra = 1\n")
    done = ecolens("run", "--config", str(config), "--validate-config")
    assert "mqtt.zebra: unknown setting" in done.stderr and "did you mean" not in done.stderr


@pytest.mark.parametrize(
    ("command", "toml", "settings"),
    [
        ("run", "[web]\ntls_cert = '{d}/c.pem'\ntls_key = '{d}/k.pem'\n", ["web.tls_cert", "web.tls_key"]),
        ("serve", "[server]\ntls_cert = '{d}/c.pem'\ntls_key = '{d}/k.pem'\n", ["server.tls_cert"]),
        ("aggregate", "[mqtt]\nca_file = '{d}/ca.pem'\n", ["mqtt.ca_file"]),
    ],
)
def test_missing_files_are_named(tmp_path, command, toml, settings):
    config = tmp_path / "c.toml"
    config.write_text(toml.format(d=tmp_path))
    done = ecolens(command, "--config", str(config), "--validate-config")
    assert done.returncode == 2, done.stdout
    for setting in settings:
        assert f"{setting}: file not found" in done.stderr, done.stderr


def test_good_configs_say_ok_without_secrets(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[mqtt]\npassword = 'hunter2'\n")
    for command in ("run", "aggregate"):
        done = ecolens(command, "--config", str(config), "--validate-config")
        assert done.returncode == 0, done.stderr
        assert "configuration OK" in done.stderr and "hunter2" not in done.stdout + done.stderr
        json.loads(done.stdout)  # the settings alone on stdout
    served = ecolens("serve", "--validate-config")
    assert served.returncode == 0 and "configuration OK; model ecolens-plastic-lite0" in served.stderr
    lan = ecolens("aggregate", "--validate-config", "--http-host", "0.0.0.0")
    assert lan.returncode == 2 and "without API keys" in lan.stderr
