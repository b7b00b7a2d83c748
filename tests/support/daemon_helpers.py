"""Helpers for the daemon tests: a recording MQTT subscriber, config files, subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[2]


def clip_manifest() -> dict[str, Any]:
    from ecolens.models import samples_dir

    return json.loads((samples_dir() / "clip" / "manifest.json").read_text())


def clip_path() -> Path:
    from ecolens.models import samples_dir

    return samples_dir() / "clip" / "items.mp4"


class Recorder:
    """Subscribes (persistent session, QoS 1) and records every message."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        client_id: str = "test-recorder",
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "recorder could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def results(self, topic: str) -> dict[str, dict]:
        """Unique results by event_id (QoS 1 may deliver twice), in arrival order."""
        unique: dict[str, dict] = {}
        for payload in self.on(topic):
            result = json.loads(payload)
            unique.setdefault(result["event_id"], result)
        return unique

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def status_word(payload: bytes) -> str:
    """``online`` / ``offline`` from a status message: JSON while the bin runs (with its
    camera state), the plain word from the last will."""
    text = payload.decode()
    return json.loads(text)["status"] if text.startswith("{") else text


def daemon_process(args: list[str], log_path: Path, **env: str) -> subprocess.Popen:
    """``python -m ecolens.cli run ...`` as a real process; stderr (JSON logs) to a file."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
    environment.update(env)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ecolens.cli", "run", *args],
            stdout=log,
            stderr=log,
            env=environment,
            cwd=REPO,
        )
