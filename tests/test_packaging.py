"""The wheel holds every package of the source tree under ``ecolens.*`` (setup.py finds them;
nobody lists them by hand) and the data files the runtime reads."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("ecolens", "core", "edge", "fleet", "convert", "train", "bench", "models")


@pytest.mark.timeout(300)
def test_the_wheel_ships_every_package_and_its_data(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            tmp_path,
            REPO,
        ],
        check=True,
        capture_output=True,
        timeout=280,
    )
    (wheel,) = tmp_path.glob("ecolens-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder in FOLDERS:
        prefix = "ecolens" if folder == "ecolens" else f"ecolens/{folder}"
        for init in (REPO / folder).rglob("__init__.py"):
            expected.add(f"{prefix}/{init.relative_to(REPO / folder).as_posix()}")
    assert expected and expected - names == set()
    assert "ecolens/core/schema/result.schema.json" in names
    assert "ecolens/fleet/static/dashboard.html" in names
    assert any(n.startswith("ecolens/models/") and n.endswith(".tflite") for n in names)
    assert not any(n.startswith("tests/") for n in names)
