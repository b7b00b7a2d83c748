"""The deployable model `ecolens adapt` writes itself, so the site's gain cannot be lost between
adapting and converting: int8 calibrated on base images AND the site's frames (the site gate's
activation range must cover the frames where it opens), proven on the held-out site frames, and
kept only when it holds at least ``KEEP_GAIN`` of the gain adapt measured there; otherwise the
next quantization mode that does (`ecolens convert`'s order)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.converter import convert
from ecolens.convert.labels import POSITIVE_LABEL
from ecolens.convert.metrics import classification_metrics
from ecolens.convert.options import ConvertOptions
from ecolens.convert.progress import progress
from ecolens.convert.validate import EvalSet
from ecolens.train.adapt.frames import Frames
from ecolens.train.dataset import Sample

KEEP_GAIN = 0.9  # share of adapt's measured gain the written .tflite must keep

log = progress("adapt")


def link_all(samples: list[Sample], folder: Path, by_label: bool = False) -> None:
    """Symlinks to ``samples`` below ``folder`` (in label sub-folders with ``by_label``)."""
    for index, sample in enumerate(samples):
        target = folder / (sample.label if by_label else "") / f"{index:05d}_{sample.path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(sample.path.resolve(), target)


def gain_gate(report: dict[str, Any], labels: tuple[str, ...]) -> Any:
    """The converter's extra check: balanced accuracy on the held-out frames keeps the gain."""
    base = float(report["field_held_out"]["base"]["balanced_accuracy"])
    gain = float(report["gain"])
    needed = base + KEEP_GAIN * gain

    def check(probs: np.ndarray, evalset: EvalSet) -> str | None:
        known = evalset.labelled
        truth = [evalset.truth[i] for i in known]
        predicted = [labels[int(probs[i].argmax())] for i in known]
        score = classification_metrics(truth, predicted, labels, POSITIVE_LABEL)["balanced_accuracy"]
        if score >= needed:
            return None
        kept = (score - base) / gain if gain else 0.0
        return (
            f"balanced accuracy {score:.3f} on {len(known)} held-out site frames keeps {kept:.0%} of "
            f"adapt's gain (+{gain:.3f} over {base:.3f}; needs {KEEP_GAIN:.0%})"
        )

    return check


def deploy(
    h5: Path, tflite: Path, frames: Frames, report: dict[str, Any], labels: tuple[str, ...]
) -> dict[str, Any]:
    """Convert the adapted ``h5`` to ``tflite`` (see the module docstring); returns what the
    report records of it."""
    with tempfile.TemporaryDirectory(prefix="ecolens-adapt-") as tmp:
        calibration, proof = Path(tmp) / "calibration", Path(tmp) / "proof"
        link_all(frames.base_train, calibration / "base")
        link_all(frames.fit, calibration / "site")
        link_all(frames.holdout, proof, by_label=True)
        log(f"converting {h5} -> {tflite} (calibrated on base images and site frames)")
        converted = convert(
            ConvertOptions(
                source=h5, out=tflite, calibration=calibration, eval=proof, gate=gain_gate(report, labels)
            )
        )
    metrics = converted["validation"]["tflite_metrics"]
    return {
        "tflite": str(tflite),
        "mode": converted["mode"],
        "bytes": converted["validation"]["tflite_bytes"],
        "agreement": round(converted["validation"]["agreement"], 4),
        "held_out_balanced_accuracy": round(metrics["balanced_accuracy"], 4),
        "report": converted["report_path"],
    }
