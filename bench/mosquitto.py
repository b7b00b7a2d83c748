"""A real Mosquitto broker per test, on a free port, that tests can stop and restart
(outage tests) and configure (passwords, TLS)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def restartable_port() -> int:
    """A free port outside the ephemeral range: while a restartable broker is stopped, a client
    reconnecting to it gets a local port from that range, and one could take the broker's own
    port (a port from free_port() is one of them), so the restart would fail to listen."""
    low, high = ephemeral_range()
    candidates = list(range(10000, low)) + list(range(high + 1, 65536))
    for port in random.sample(candidates, 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port outside the ephemeral range")


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("mosquitto is not installed: run scripts/setup (apt-get install mosquitto)")


class MosquittoBroker:
    """Runs ``mosquitto -c <generated conf>`` in ``workdir``; ``extra_config`` lines are appended
    inside the listener (e.g. ``password_file``, ``cafile``, ``certfile``, ``keyfile``)."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        extra_config: list[str] | None = None,
        allow_anonymous: bool = True,
        persistence: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or restartable_port()
        self.host = "127.0.0.1"
        self.extra_config = extra_config or []
        self.allow_anonymous = allow_anonymous
        self.persistence = persistence
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "mosquitto.log"

    def write_config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            *self.extra_config,
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            "log_type all",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto switches to the `mosquitto` user, which cannot write the log
            # and persistence files in the test's private tmp folder (or read its password file).
            lines.append("user root")
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        config = self.write_config()
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
