"""The shipped reference model and sample data (TrashNet photos, MIT license)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

REFERENCE_NAME = "ecolens-plastic-lite0"


def models_dir() -> Path:
    return Path(str(resources.files("ecolens.models")))


def reference_h5() -> Path:
    return models_dir() / f"{REFERENCE_NAME}.h5"


def reference_tflite() -> Path:
    """The committed int8 model every command uses by default."""
    return models_dir() / f"{REFERENCE_NAME}.int8.tflite"


def samples_dir() -> Path:
    return models_dir() / "samples"


def calibration_dir() -> Path:
    """Representative images for int8 calibration (from the training split)."""
    return samples_dir() / "calibration"


def eval_dir() -> Path:
    """Labelled images (class sub-folders) from the validation split, never trained on."""
    return samples_dir() / "eval"
