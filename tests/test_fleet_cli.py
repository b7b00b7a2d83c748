"""`ecolens aggregate`, `report`, `simulate` as users run them: real processes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from ecolens.bench.mosquitto import free_port
from ecolens.bench.postgres import wait_until
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.config import SubscriberSection
from ecolens.fleet.storage import open_database
from ecolens.fleet.subscriber import Aggregator


def ecolens(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--database", "mysql://db/x"], "must start with sqlite:/// or postgresql://"),
        (["report", "--since", "yesterday-ish"], "expected a duration"),
        (["report", "all", "--format", "csv"], "needs --format json"),
        (["aggregate", "--broker", "http://x"], "broker URL must start with mqtt://"),
        (
            ["aggregate", "--http-host", "0.0.0.0"],
            "refusing to serve the dashboard on 0.0.0.0",
        ),
        (["aggregate", "--http-insecure", "--http-host", "0.0.0.0", "--broker", "http://x"], "mqtt://"),
        (["simulate", "--bins", "3"], "give --count N, --duration SECONDS or --scenario"),
        (["simulate", "--bins", "0", "--count", "5"], "--bins must be at least 1"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    done = ecolens(*args, env={"ECOLENS_STORAGE__URL": f"sqlite:///{tmp_path}/f.db"})
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_unknown_config_keys_and_unreachable_broker(tmp_path):
    config = tmp_path / "fleet.toml"
    config.write_text('[subscriber]\nprefx = "typo"\n')
    done = ecolens("aggregate", "--config", str(config))
    assert done.returncode == 2 and "subscriber.prefx: unknown setting" in done.stderr
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/f.db"\n')
    done = ecolens("aggregate", "--config", str(config), "--broker", f"mqtt://127.0.0.1:{free_port()}")
    assert done.returncode == 2 and "cannot connect to the MQTT broker" in done.stderr


def test_simulate_command_publishes_results_and_status(mosquitto, tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    open_database(url).close()
    agg = Aggregator(
        BrokerSection(host=mosquitto.host, port=mosquitto.port),
        SubscriberSection(prefix="site-a"),
        lambda: open_database(url, migrate=False),
        client_id="cli-test",
    ).start()
    try:
        done = ecolens(
            "simulate", "--broker", mosquitto.url, "--prefix", "site-a", "--bins", "4",
            "--count", "40", "--rate", "0", "--offline", "1", "--seed", "9",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "published 40 results from 4 bins" in done.stdout
        assert wait_until(lambda: agg.stats.snapshot()["stored"] == 40, timeout=30)
        assert agg.wait_idle()
    finally:
        agg.stop()
    # ECOLENS_STORAGE__URL works like [storage] url.
    done = ecolens("report", "status", "--format", "csv", env={"ECOLENS_STORAGE__URL": url})
    assert done.returncode == 0, done.stderr
    rows = [line.split(",") for line in done.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("bin-001", "online"), ("bin-002", "online"), ("bin-003", "online"), ("bin-004", "offline")
    ]  # fmt: skip
