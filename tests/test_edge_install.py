"""A device installs only the edge extra: no TensorFlow, and `ecolens classify` works there."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest
from ecolens.core.contract import validate_result

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "torch", "jax")


@pytest.mark.timeout(900)
def test_edge_extra_installs_without_tensorflow_and_classifies(tmp_path: Path, eval_dir: Path) -> None:
    env_dir = tmp_path / "device-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{REPO}[edge]"],
        capture_output=True,
        text=True,
        timeout=800,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert not installed & set(FORBIDDEN), installed & set(FORBIDDEN)
    assert {"ai-edge-litert", "paho-mqtt", "uvicorn", "starlette"} <= installed
    image = next((eval_dir / "plastic").glob("*.jpg"))
    proc = subprocess.run(
        [str(env_dir / "bin" / "ecolens"), "classify", str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    validate_result(result, written=True)
    assert result["source"] == str(image)
    # The model shipped inside the wheel, not read from the checkout.
    probe = subprocess.run(
        [str(python), "-c", "import ecolens.models as m; print(m.reference_tflite())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert str(env_dir) in probe.stdout
