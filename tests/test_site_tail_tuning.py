"""scripts/site_tail_tuning.py, the experiment docs/field-adaptation.md reports, still runs on the
reference model: it tunes only the blocks it names and writes an .h5 that keeps the metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from ecolens.convert.h5meta import read_h5_metadata
from ecolens.models import calibration_dir, eval_dir, reference_h5

REPO = Path(__file__).resolve().parent.parent


def link_some(source: Path, target: Path, per_folder: int) -> None:
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_folder]:
            os.symlink(image, target / folder.name / image.name)


def kernel(h5: Path, layer: str) -> np.ndarray:
    """A convolution's kernel as `model.save("x.h5")` stores it."""
    with h5py.File(h5, "r") as f:
        return np.asarray(f[f"model_weights/{layer}/{layer}/kernel"])


def test_tunes_the_named_blocks_and_keeps_metadata(tmp_path: Path) -> None:
    link_some(eval_dir(), tmp_path / "work" / "labelled", 8)
    link_some(calibration_dir(), tmp_path / "work" / "trashnet-train", 4)
    out = tmp_path / "tail.h5"
    command = [
        sys.executable,
        str(REPO / "scripts" / "site_tail_tuning.py"),
        str(tmp_path / "work"),
        str(out),
    ]
    run = subprocess.run(
        [*command, "--tune-from", "15", "--epochs", "1", "--learning-rate", "1e-3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "tuned in" in run.stdout and "on 80 rows" in run.stdout  # (16 + 24) images, mirrored
    assert read_h5_metadata(out) == read_h5_metadata(reference_h5())
    assert np.array_equal(kernel(out, "block14_expand"), kernel(reference_h5(), "block14_expand"))
    assert not np.array_equal(kernel(out, "block15_expand"), kernel(reference_h5(), "block15_expand"))
