"""Issue 11, items 6 and 9: bad input gets one clear line (no traceback) and loses nothing;
smaller faults of `report`, `--validate-config` and the daemon's queue warnings."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from ecolens.core.contract import make_result
from ecolens.edge.daemon.store import ResultQueue


def ecolens(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **env},
    )


def one_error_line(done: subprocess.CompletedProcess, command: str) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"ecolens {command}: error: ")]
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("command", ["run", "serve", "aggregate"])
def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, command):
    config = tmp_path / "latin1.toml"
    config.write_bytes('[mqtt]\nhost = "poubelle-entrée"\n'.encode("latin-1"))
    line = one_error_line(ecolens(command, "--config", str(config)), command)
    assert f"{config}: not UTF-8 text (byte " in line and "save the file as UTF-8" in line


@pytest.mark.parametrize("command", ["run", "aggregate", "simulate"])
def test_a_broker_url_with_an_unclosed_ipv6_bracket_is_one_line(tmp_path, command):
    extra = ["--count", "1"] if command == "simulate" else []
    line = one_error_line(ecolens(command, "--broker", "mqtt://[::1", *extra), command)
    assert "broker URL is not valid (Invalid IPv6 URL): 'mqtt://[::1'" in line


@pytest.mark.parametrize("since", ["99999999999d", "1e400d", "99999-01-01"])
def test_report_with_a_window_beyond_any_calendar_is_one_line(tmp_path, since):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    from ecolens.fleet.storage import open_database

    open_database(url).close()
    line = one_error_line(ecolens("report", "--database", url, "--since", since), "report")
    assert "since:" in line


def test_report_with_a_mistyped_database_creates_nothing(tmp_path):
    (tmp_path / "fleet.db").touch()
    typo = tmp_path / "flet.db"
    line = one_error_line(ecolens("report", "--database", f"sqlite:///{typo}"), "report")
    assert f"no database at {typo}" in line
    assert not typo.exists()


def test_validate_config_checks_that_the_named_files_exist(tmp_path, reference_model):
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[model]\npath = "{reference_model}"\n[mqtt]\ntls = true\nca_file = "/etc/no-such-ca.pem"\n'
    )
    line = one_error_line(ecolens("run", "--config", str(config), "--validate-config"), "run")
    assert line == "ecolens run: error: mqtt.ca_file: file not found: /etc/no-such-ca.pem"
    config.write_text(f'[model]\npath = "{reference_model}"\n[source]\nuri = "{tmp_path}/missing.mp4"\n')
    line = one_error_line(ecolens("run", "--config", str(config), "--validate-config"), "run")
    assert line.endswith(f"video file not found: {tmp_path}/missing.mp4")


def test_a_full_queue_warns_once_per_burst_not_per_dropped_result(tmp_path, caplog):
    queue = ResultQueue(tmp_path / "q.sqlite3", max_items=5)
    caplog.set_level(logging.WARNING)

    def put(n: int) -> None:
        result = make_result(("a", "b"), (0.4, 0.6), {"name": "m", "version": "1", "sha256": "e" * 64}, 1.0,
                             event_id=f"e-{n}")  # fmt: skip
        queue.put_result(result, "ecolens/b/result", 1)

    for n in range(40):  # 35 dropped in one burst
        put(n)
    for row in queue.pending(3):  # the broker takes some
        queue.delete(row.id)
    put(40)  # room again: the burst is over
    for n in range(41, 50):  # a second burst
        put(n)
    queue.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("queue full" in m for m in messages) == 2, messages
    assert any("queue has room again; 35 results were dropped" in m for m in messages)
