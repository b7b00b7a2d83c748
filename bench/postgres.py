"""A real PostgreSQL server per test session: ``initdb`` + ``pg_ctl`` into a temporary folder
on a free port, run as an unprivileged user when the tests run as root (PostgreSQL refuses
root). Skips with a clear message when the server binaries are not installed."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from ecolens.bench.mosquitto import restartable_port

INSTALL_HINT = "apt-get install postgresql (server binaries in /usr/lib/postgresql/*/bin)"


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb, or initdb on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """``start()`` creates a cluster (trust auth, loopback only) and starts it; ``url(db)``."""

    def __init__(self, bin_dir: Path, run_as: str | None = None) -> None:
        self.bin_dir = bin_dir
        self.run_as = run_as if run_as is not None else ("postgres" if os.geteuid() == 0 else None)
        self.workdir = Path(tempfile.mkdtemp(prefix="ecolens-pg-"))
        self.datadir = self.workdir / "data"
        self.port = restartable_port()  # kept across restarts (outage tests)
        self.host = "127.0.0.1"
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(self.workdir, user.pw_uid, user.pw_gid)

    def _run(self, *command: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(self.datadir),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses={self.host} "
            f"-c unix_socket_directories={self.workdir} -c fsync=off "
            "-c max_connections=50 -c shared_buffers=64MB"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.datadir),
            "-o", options,
            "-l", str(self.workdir / "postgres.log"),
            "-w", "-t", "60",
            "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.datadir.exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                )
        shutil.rmtree(self.workdir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        path = self.workdir / "postgres.log"
        return path.read_text() if path.exists() else ""


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
