"""The same image gives the same label and scores from POST /predict (real server) as from the
MQTT daemon (`ecolens run` as a real process, publishing to a real Mosquitto). Against the
default server; the Flask server's results are compared with this server's in
test_api_parity.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests
from ecolens.core.contract import validate_result

from tests.support.api_server import ApiServer
from tests.support.daemon_helpers import Recorder


def test_predict_matches_the_mqtt_daemon(tmp_path, mosquitto, reference_model, eval_dir):
    folder = tmp_path / "items"
    folder.mkdir()
    picks = (
        sorted((eval_dir / "plastic").glob("*.jpg"))[:2]
        + sorted((eval_dir / "non_plastic").glob("*.jpg"))[:2]
    )
    for path in picks:
        shutil.copy(path, folder / path.name)

    recorder = Recorder(mosquitto.port, ["ecolens/bin-api/result"], client_id="api-parity")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    daemon = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "run", "--source", str(folder)]
        + ["--broker", mosquitto.url, "--device-id", "bin-api", "--model", str(reference_model)]
        + ["--store", str(tmp_path / "queue.sqlite3"), "--speed", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert daemon.returncode == 0, daemon.stderr
    assert recorder.wait(lambda: len(recorder.results("ecolens/bin-api/result")) >= len(picks), 10)
    by_name = {Path(r["source"]).name: r for r in recorder.results("ecolens/bin-api/result").values()}
    recorder.close()
    assert set(by_name) == {p.name for p in picks}

    config = {"model": {"path": str(reference_model)}, "server": {"workers": 1}}
    with ApiServer(tmp_path / "api", config) as api:
        for path in picks:
            response = requests.post(
                api.url + "/predict",
                data=path.read_bytes(),
                headers={"Content-Type": "image/jpeg"},
                timeout=30,
            )
            http = response.json()
            mqtt = by_name[path.name]
            validate_result(http, written=True)
            validate_result(mqtt, written=True)
            assert (http["label"], http["scores"], http["model"]) == (
                mqtt["label"],
                mqtt["scores"],
                mqtt["model"],
            ), path.name
