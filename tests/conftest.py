"""Shared fixtures: real brokers, the real reference model, the shipped samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from ecolens.bench.mosquitto import MosquittoBroker

REPO = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from tests.support.shipped_broker import FleetBroker


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh anonymous Mosquitto on a free port, stopped after the test."""
    broker = MosquittoBroker(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def fleet_broker(tmp_path: Path) -> Iterator[FleetBroker]:
    """The shipped broker configuration (systemd/mosquitto) with a user per actor: the attack
    tests run against exactly what a fleet installs. install.sh needs root."""
    import os

    from tests.support.shipped_broker import FleetBroker

    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root (chgrp mosquitto)")
    bins = ("bin-01", "bin-02", "bin-evil", "bin-r1", "bin-r2", "bin-r3")
    broker = FleetBroker(tmp_path / "fleet-broker", bins)
    installed = broker.install()
    assert installed.returncode == 0, installed.stderr
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def reference_model() -> Path:
    from ecolens.models import reference_tflite

    path = reference_tflite()
    assert path.is_file(), f"reference model missing: {path}"
    return path


# The two servers of `ecolens serve` (server.kind): the API contract tests run against both, so
# they cannot drift (same bodies, statuses, headers and errors).
API_KINDS = ["uvicorn", "flask"]


@pytest.fixture(scope="module", params=API_KINDS)
def api_kind(request: pytest.FixtureRequest) -> str:
    """Which server a contract test's `ecolens serve` runs: a module's tests run once per kind."""
    if request.param == "flask":
        pytest.importorskip("flask", reason="--server flask needs the flask extra")
        pytest.importorskip("gunicorn", reason="--server flask needs the flask extra")
    return request.param


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    from ecolens.models import eval_dir

    return eval_dir()


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL for the session (initdb + pg_ctl in a temp folder, free port)."""
    from ecolens.bench.postgres import INSTALL_HINT, PostgresServer, postgres_bin_dir

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL server binaries not installed: {INSTALL_HINT}")
    server = PostgresServer(bin_dir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh empty database on the session's PostgreSQL."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The fleet's database on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="module")
def field_domain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """333 frames (60 plastic) of the shipped photos as a dark, warm-lit, far-away camera sees them."""
    from ecolens.models import calibration_dir, eval_dir

    from tests.support.field_domain import build_field_domain

    return build_field_domain([eval_dir(), calibration_dir()], tmp_path_factory.mktemp("field") / "frames")
