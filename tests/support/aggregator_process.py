"""A real `ecolens aggregate` process for tests and measurements (canary checks every second by default)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ecolens.bench.postgres import wait_until


def start_aggregator(
    log: Path,
    broker_url: str,
    database: Path,
    key: Path | None = None,
    *extra: str,
    check_interval_s: float = 1.0,
) -> subprocess.Popen:
    """Started once it says it is aggregating; its stderr (the log lines) goes to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    env.update(ECOLENS_ROLLOUT__CHECK_INTERVAL_S=str(check_interval_s), TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "ecolens.cli", "aggregate", "--broker", broker_url]
    command += ["--database", f"sqlite:///{database}", *extra]
    if key is not None:
        command += ["--rollout-key", str(key)]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stderr=stderr, env=env)
    if not wait_until(lambda: "aggregating" in log.read_text() or process.poll() is not None, timeout=30):
        process.kill()
    assert process.poll() is None, log.read_text()
    return process
