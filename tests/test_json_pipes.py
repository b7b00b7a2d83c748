"""Every documented pipe into jq works: the daemon's log with the camera missing (native
library warnings would break the stream), `--validate-config` (JSON alone on stdout), and a
reader that leaves early (`| head`) ends the command quietly."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ecolens.bench.postgres import wait_until

ECOLENS = f"{shlex.quote(sys.executable)} -m ecolens.cli"


def sh(
    command: str, cwd: Path, timeout: float = 120, pipefail: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """``command`` through a real shell, pipes and all, as a user types it (``pipefail``: any
    failing stage fails it; off where the reader leaving early is the point)."""
    return subprocess.run(
        ["bash", *(["-o", "pipefail"] if pipefail else []), "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **env},
    )


def daemon_log_without_camera(tmp_path: Path, mosquitto, **env: str) -> list[str]:
    """stderr (what the journal stores) of `ecolens run` on a camera that is not there, until
    the daemon has said so itself (its camera_down line)."""
    log = tmp_path / "stderr.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "ecolens.cli", "run", "--source", "0", "--broker", mosquitto.url,
         "--store", str(tmp_path / "q.sqlite3"), "--device-id", "bin-nocam"],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=tmp_path, env={**os.environ, **env},
    )  # fmt: skip
    try:
        assert wait_until(lambda: b'"camera_down"' in log.read_bytes(), timeout=90, interval=0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return log.read_text().splitlines()


def test_the_daemons_log_without_a_camera_is_json_lines_only(tmp_path, mosquitto):
    lines = daemon_log_without_camera(tmp_path, mosquitto)
    events = [json.loads(line).get("event") for line in lines]  # each line parses: `| jq` reads on
    assert "camera_down" in events
    done = sh(f"jq -c .event < {tmp_path / 'stderr.log'}", tmp_path)  # what `journalctl -o cat | jq` reads
    assert done.returncode == 0 and '"camera_down"' in done.stdout, done.stderr


def test_a_users_own_opencv_log_level_still_wins(tmp_path, mosquitto):
    """The control: OpenCV's C++ logger, asked to speak, writes its own lines into the stream;
    so the test above would see them."""
    lines = daemon_log_without_camera(tmp_path, mosquitto, OPENCV_LOG_LEVEL="WARNING")
    assert any(line.startswith("[ WARN:") for line in lines), lines[:5]


@pytest.mark.parametrize(
    "command",
    [
        f"{ECOLENS} run --validate-config",
        f"{ECOLENS} serve --validate-config",
        f"{ECOLENS} aggregate --validate-config --database sqlite:///fleet.db",
    ],
)
def test_validate_config_prints_json_alone_and_the_verdict_on_stderr(tmp_path, command):
    done = sh(f"{command} | jq -c .", tmp_path)
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)
    assert isinstance(settings, dict) and settings
    assert done.stderr.strip().splitlines()[-1].startswith("configuration OK"), done.stderr


def test_demo_json_into_head_ends_quietly(tmp_path):
    done = sh(f"{ECOLENS} demo --json --speed 0 | head -2 | jq -c .label", tmp_path, 300, False)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_classify_into_head_ends_quietly(tmp_path, eval_dir):
    done = sh(f"{ECOLENS} classify {eval_dir} | head -1 | jq -c .label", tmp_path, 120, False)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
