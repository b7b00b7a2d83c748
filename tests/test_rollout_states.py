"""Retained model states from anyone who may publish on a bin's state topic: `ecolens rollout
status` lists the well-formed ones and leaves the rest out, instead of stopping with a traceback
(a string where the running model belongs) or printing a bin's escape sequences to the operator's
terminal. A real Mosquitto and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import paho.mqtt.publish as publish
from ecolens.core.wire import state_topic


def state(device: str, **changes: object) -> str:
    body = {
        "device_id": device,
        "running": {"name": "ecolens-plastic-lite0", "version": "2.1.0", "sha256": "ab" * 32},
        "previous": None,
        "serial": 0,
        "last_event": None,
    }
    body.update(changes)
    return json.dumps(body)


def test_status_lists_good_states_and_leaves_hostile_ones_out(mosquitto) -> None:
    retained = {
        state_topic("ecolens", "bin-good"): state("bin-good"),
        state_topic("ecolens", "bin-text"): state("bin-text", running="not an object"),
        state_topic("ecolens", "bin-event"): state("bin-event", last_event=["installed"]),
        state_topic("ecolens", "bin-previous"): state("bin-previous", previous={"version": 3}),
        state_topic("ecolens", "bin-other"): state("bin-elsewhere"),  # another bin's name
        state_topic("ecolens", "bin-nan"): state("bin-nan").replace('"serial": 0', '"serial": NaN'),
        state_topic("ecolens", "bin-bytes"): b"\xff\xfe not json",
        state_topic("ecolens", "bin-esc"): state(
            "bin-esc", last_event={"event": "installed", "reason": "\x1b[2J\x1b[31mpwned"}
        ),
    }
    for topic, payload in retained.items():
        publish.single(topic, payload, qos=1, retain=True, port=mosquitto.port)
    proc = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "rollout", "status", "--broker", mosquitto.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.startswith("bin-")]
    assert listed == ["bin-esc", "bin-good"]
    assert "\x1b" not in proc.stdout and "installed (?[2J?[31mpwned)" in proc.stdout
