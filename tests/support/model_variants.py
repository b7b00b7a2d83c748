"""Real, loadable variants of the reference .tflite: the same network with other metadata
(a newer version; or inputs scaled to nothing, so it answers one class whatever it sees)."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

from ecolens.core.metadata import embed_metadata, read_metadata
from ecolens.models import reference_tflite
from ecolens.train.adapt.output import next_version

PREVIOUS_MODEL = Path(__file__).resolve().parent.parent / "data" / "model-1.0.0"
# The reference model 1.0.0 (trained on the white board only; the same blobs as in the git history
# of models/): the base that a dark, warm-lit, far-away camera really defeats. 2.0.0 was trained
# with domain randomisation against that shift and gains only ~0.02 from `ecolens adapt` there.
PREVIOUS_H5 = PREVIOUS_MODEL / "ecolens-plastic-lite0.h5"
PREVIOUS_TFLITE = PREVIOUS_MODEL / "ecolens-plastic-lite0.int8.tflite"


def version_of(model: Path) -> str:
    return read_metadata(model).version


def shipped_version() -> str:
    """The version the shipped .tflite carries (tests follow the model, not a hard-coded number)."""
    return read_metadata(reference_tflite()).version


def later_version(version: str, steps: int = 1) -> str:
    """``steps`` patch releases after ``version`` (2.0.0 -> 2.0.1 -> 2.0.2)."""
    for _ in range(steps):
        version = next_version(version)
    return version


def flatbuffer_of(path: Path) -> bytes:
    """The model without its appended metadata archive."""
    with zipfile.ZipFile(path) as archive:
        start = archive.infolist()[0].header_offset
    return path.read_bytes()[:start]


def variant(reference: Path, out: Path, version: str, *, one_class: bool = False) -> Path:
    meta = read_metadata(reference)
    changes: dict = {"version": version}
    if one_class:
        changes["input"] = dataclasses.replace(meta.input, std=(1e9, 1e9, 1e9))
    out.write_bytes(embed_metadata(flatbuffer_of(reference), dataclasses.replace(meta, **changes)))
    return out
