"""The daemon and the HTTP API run on an emulated Raspberry Pi, with the real aarch64 wheels of
paho-mqtt, uvicorn and Starlette, against a real Mosquitto and over real HTTP.

Run once per Python version (bookworm/3.11 on a Pi 4, trixie/3.13 on a Pi 5).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from ecolens.bench.mosquitto import MosquittoBroker, free_port
from ecolens.core.contract import validate_result
from ecolens.core.preprocess import find_images

from tests.arm64.target import Target
from tests.support.parity import Tolerance, differences, output_step

pytestmark = pytest.mark.arm64

API_KEY = "arm64-check-key-0123456789abcdef"


def host_ecolens(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    ecolens = Path(sys.executable).parent / "ecolens"
    return subprocess.run(
        [str(ecolens), *args], input=stdin, capture_output=True, text=True, timeout=300, check=True
    )


@pytest.fixture
def api_url(service_target: Target, tmp_path: Path) -> Iterator[str]:
    """``ecolens serve`` (uvicorn, one worker) on the board, on a free local port."""
    key_hash = host_ecolens("serve", "--hash-key", stdin=API_KEY).stdout.strip()
    port = free_port()
    config = tmp_path / "api.toml"
    config.write_text(
        f'[model]\nthreads = 1\n[server]\nhost = "127.0.0.1"\nport = {port}\nworkers = 1\n'
        f'[auth]\nkey_hashes = ["{key_hash}"]\n'
    )
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        service_target.ecolens_command("serve", "--config", str(config)),
        env={**service_target.emulator.environment(), "HOME": str(tmp_path)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_api_on_the_board_answers_like_x86(
    api_url: str, eval_dir: Path, reference_model: Path, x86_results: dict[str, dict]
) -> None:
    assert requests.get(f"{api_url}/healthz", timeout=10).json() == {"status": "alive"}
    images = find_images(eval_dir)[::40]
    board: dict[str, dict] = {}
    for image in images:
        response = requests.post(
            f"{api_url}/predict",
            data=image.read_bytes(),
            headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {API_KEY}"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        result = response.json()
        validate_result(result)
        board[str(image)] = result
    x86 = {str(image): x86_results[str(image)] for image in images}
    assert not differences(x86, board, Tolerance(output_step(reference_model)))
    refused = requests.post(
        f"{api_url}/predict",
        data=images[0].read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        timeout=60,
    )
    assert refused.status_code == 401


def demo_results(command: list[str], env: dict[str, str] | None) -> list[dict]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_daemon_on_the_board_publishes_the_sample_clips_items(
    service_target: Target, mosquitto: MosquittoBroker
) -> None:
    """`ecolens demo` runs the real daemon on the sample clip and prints what arrives at the
    broker. The clip's frames come from OpenCV's FFmpeg, whose colour conversion differs by
    up to 3 levels between the x86 and aarch64 wheels, so scores may differ slightly from x86
    (besides the int8 kernels' own spread, see tests/support/parity.py); items and labels may not."""
    args = ("demo", "--speed", "0", "--json", "--broker", mosquitto.url)
    x86 = demo_results([str(Path(sys.executable).parent / "ecolens"), *args], env=None)
    arm64 = demo_results(service_target.ecolens_command(*args), service_target.emulator.environment())
    assert len(x86) >= 5
    assert len(arm64) == len(x86)
    for on_x86, on_arm64 in zip(x86, arm64):
        validate_result(on_arm64)
        assert on_arm64["label"] == on_x86["label"]
        assert on_arm64["frames"] == on_x86["frames"]
        assert on_arm64["model"] == on_x86["model"]
        assert on_arm64["confidence"] == pytest.approx(on_x86["confidence"], abs=0.05)
