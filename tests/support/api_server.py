"""A real `ecolens serve` process (the real model) on a free port, for API tests: the default
server (uvicorn) or, with ``kind="flask"``, the Flask Blueprint under gunicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from ecolens.bench.mosquitto import free_port

from tests.support.toml_files import write_toml


class ApiServer:
    """Runs ``python -m ecolens.cli serve --config <file>``; ``log()`` is its stderr."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, dict[str, Any]],
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        verify: str | bool = True,
        wait_for: str = "ready",
        kind: str = "uvicorn",
    ) -> None:
        """``wait_for``: "ready" (/readyz 200), "alive" (/healthz 200) or "listening" (any
        HTTP answer, for servers that refuse the test client). ``kind``: ``[server] kind``."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = {section: dict(values) for section, values in config.items()}
        server = self.config.setdefault("server", {})
        server.setdefault("host", "127.0.0.1")
        server.setdefault("port", free_port())
        server.setdefault("workers", 1)
        server.setdefault("threads", 2)
        server.setdefault("kind", kind)
        self.port = server["port"]
        scheme = "https" if "tls_cert" in server else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.extra_args = extra_args or []
        self.env = env or {}
        self.verify = verify
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen | None = None
        self.wait_for = wait_for

    def command(self) -> list[str]:
        config = write_toml(self.workdir / "api.toml", self.config)
        return [sys.executable, "-m", "ecolens.cli", "serve", "--config", str(config)]

    def start(self, timeout: float = 60.0) -> ApiServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECOLENS_")}
        env.update(self.env)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command() + self.extra_args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        path = "/readyz" if self.wait_for == "ready" else "/healthz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ecolens serve exited ({self.process.returncode}):\n{self.log()}")
            try:
                status = requests.get(self.url + path, timeout=1, verify=self.verify).status_code
                if status == 200 or self.wait_for == "listening":
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ecolens serve did not get {path} 200 within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # what systemd sends
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Shared by the API tests: two keys, one configured as a hash, one in clear via the environment
# (the systemd secrets-file path).
KEY_HASHED = "test-key-alpha-0123456789abcdef"
KEY_FROM_ENV = "test-key-bravo-fedcba9876543210"


def key_hash(key: str) -> str:
    from ecolens.core.http.keys import hash_key

    return hash_key(key)


def auth_config() -> dict[str, Any]:
    return {"key_hashes": [key_hash(KEY_HASHED)]}


def auth_env() -> dict[str, str]:
    return {"ECOLENS_AUTH__KEYS": KEY_FROM_ENV}


def bearer(key: str = KEY_HASHED) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression-bomb shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def small_limits_server(folder: Path, model: Path, workers: int, threads: int, kind: str) -> ApiServer:
    """A keyed server with small batch and body limits and no rate limit, so fuzzing and schema
    tests reach every 4xx quickly."""
    return ApiServer(
        folder,
        {
            "model": {"path": str(model)},
            "server": {"workers": workers, "threads": threads, "kind": kind},
            "auth": auth_config(),
            "limits": {"max_batch": 4, "rate": "", "max_body_bytes": 256 * 1024},
        },
    ).start()
