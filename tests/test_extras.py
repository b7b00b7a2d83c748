"""Every extra installs what its features import: each extra alone, in its own clean virtualenv
(from the release's pins, no index), starts each of its features; a missing import fails here
before it fails on a bin. TensorFlow goes into the convert extra's venv only."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from ecolens.bench.mosquitto import free_port
from ecolens.bench.postgres import wait_until

from tests.support.cleanvenv import constraints_file, ecolens_wheel, install_extra
from tests.support.daemon_helpers import clip_path

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ecolens_wheel(tmp_path_factory.mktemp("wheel"))


def venv_with(tmp_path_factory: pytest.TempPathFactory, wheel: Path, extras: str) -> Path:
    folder = tmp_path_factory.mktemp(f"venv-{extras.replace(',', '-')}")
    return install_extra(folder, wheel, extras, constraints_file("workstation"))


def clean_env(home: Path) -> dict[str, str]:
    """No PYTHONPATH, no ECOLENS_* of the caller: the venv alone decides what imports."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("ECOLENS_", "PYTHON"))}
    return {**keep, "HOME": str(home)}


class Started:
    """A command of the venv, running until stop(); stderr kept for the failure message."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.log = cwd / f"{Path(argv[0]).name}-{argv[1]}.log"
        self.process = subprocess.Popen(  # noqa: S603
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("wb")
        )

    def wait_http(self, url: str, timeout: float = 120) -> requests.Response:
        answers: list[requests.Response] = []

        def answered() -> bool:
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.stderr()}"
            try:
                answers.append(requests.get(url, timeout=5))
            except requests.ConnectionError:
                return False
            return True

        assert wait_until(answered, timeout=timeout, interval=0.3), f"{url} never answered: {self.stderr()}"
        return answers[-1]

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        return self.stderr()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Started]]:
    running: list[Started] = []
    yield running
    for one in running:
        one.stop()


def test_edge_serves_the_daemon_its_bin_page_and_the_api(
    tmp_path_factory, wheel, tmp_path, mosquitto, started, eval_dir
):
    bin_dir = venv_with(tmp_path_factory, wheel, "edge")
    env = clean_env(tmp_path)
    web = free_port()
    daemon = Started(
        [str(bin_dir / "ecolens"), "run", "--source", str(clip_path()), "--loop", "--broker", mosquitto.url,
         "--device-id", "bin-extra", "--store", str(tmp_path / "q.sqlite3")],
        tmp_path, {**env, "ECOLENS_WEB__ENABLED": "true", "ECOLENS_WEB__PORT": str(web)},
    )  # fmt: skip
    started.append(daemon)
    page = daemon.wait_http(f"http://127.0.0.1:{web}/")
    assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:500]
    assert requests.get(f"http://127.0.0.1:{web}/metrics", timeout=10).status_code == 200
    assert requests.get(f"http://127.0.0.1:{web}/api/state", timeout=10).json()["device_id"] == "bin-extra"

    port = free_port()
    api = Started([str(bin_dir / "ecolens"), "serve", "--port", str(port)], tmp_path, env)
    started.append(api)
    assert api.wait_http(f"http://127.0.0.1:{port}/readyz").status_code == 200
    image = next((eval_dir / "plastic").glob("*.jpg")).read_bytes()
    answer = requests.post(
        f"http://127.0.0.1:{port}/predict", json={"image": base64.b64encode(image).decode()}, timeout=30
    )
    assert answer.status_code == 200 and answer.json()["label"] == "plastic", answer.text
    for one in (daemon, api):
        log = one.stop()
        assert "ModuleNotFoundError" not in log and "is not installed" not in log, log


def test_fleet_serves_the_aggregator_and_its_dashboard(tmp_path_factory, wheel, tmp_path, mosquitto, started):
    bin_dir = venv_with(tmp_path_factory, wheel, "fleet")
    env = clean_env(tmp_path)
    port = free_port()
    database = f"sqlite:///{tmp_path / 'fleet.db'}"
    aggregate = Started(
        [str(bin_dir / "ecolens"), "aggregate", "--broker", mosquitto.url, "--database", database,
         "--http-port", str(port)],
        tmp_path, env,
    )  # fmt: skip
    started.append(aggregate)
    health = aggregate.wait_http(f"http://127.0.0.1:{port}/api/health")
    assert health.json()["ok"] is True, health.text
    dashboard = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert dashboard.status_code == 200 and "<html" in dashboard.text.lower()
    assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
    simulate = subprocess.run(
        [str(bin_dir / "ecolens"), "simulate", "--broker", mosquitto.url, "--bins", "2", "--count", "10",
         "--rate", "0"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert simulate.returncode == 0, simulate.stderr[-2000:]
    report = subprocess.run(
        [str(bin_dir / "ecolens"), "report", "--database", database, "--format", "json"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    json.loads(report.stdout)
    log = aggregate.stop()
    assert "ModuleNotFoundError" not in log and "is not installed" not in log, log


def test_plots_draws_the_evaluation_pictures(tmp_path_factory, wheel, tmp_path):
    bin_dir = venv_with(tmp_path_factory, wheel, "plots")
    done = subprocess.run(
        [str(bin_dir / "ecolens"), "evaluate", "--out", str(tmp_path / "evaluation")],
        capture_output=True, text=True, timeout=600, env=clean_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for picture in ("confusion_matrix.png", "reliability.png"):
        assert (tmp_path / "evaluation" / picture).read_bytes()[:4] == b"\x89PNG", picture


def test_bench_serves_the_plain_litert_baseline(tmp_path_factory, wheel, tmp_path, started, reference_model):
    bin_dir = venv_with(tmp_path_factory, wheel, "edge,bench")
    port = free_port()
    plain = Started(
        [str(bin_dir / "python"), "-m", "ecolens.bench.plain_app", "--model", str(reference_model),
         "--port", str(port)],
        tmp_path, clean_env(tmp_path),
    )  # fmt: skip
    started.append(plain)
    assert plain.wait_http(f"http://127.0.0.1:{port}/readyz").status_code == 200


def test_convert_converts_and_inspects_in_its_own_venv(tmp_path_factory, wheel, tmp_path):
    """The one venv with TensorFlow. The model is one of the converter corpus's small trained
    archetypes (a 64x64 CNN with a Rescaling layer, trained here with this venv's TensorFlow):
    the reference model would take minutes to prove, and what is checked is the extra."""
    pytest.importorskip("tensorflow")
    from ecolens.models import calibration_dir

    from tests.support.corpus import ARCHETYPES, build, photos

    h5 = str(build(ARCHETYPES["rescaling-inside"], tmp_path / "model", *photos()))
    began = time.monotonic()
    bin_dir = venv_with(tmp_path_factory, wheel, "convert")
    installed_s = time.monotonic() - began
    env = clean_env(tmp_path)
    out = tmp_path / "ref.tflite"
    convert = subprocess.run(
        [str(bin_dir / "ecolens"), "convert", h5, "--out", str(out), "--labels", "non_plastic,plastic",
         "--calibration", str(calibration_dir())],
        capture_output=True, text=True, timeout=1200, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert convert.returncode == 0, convert.stderr[-3000:]
    inspect = subprocess.run(
        [str(bin_dir / "ecolens"), "inspect", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert inspect.returncode == 0 and "plastic" in inspect.stdout, inspect.stderr[-3000:]
    print(f"convert venv installed in {installed_s:.0f}s")
