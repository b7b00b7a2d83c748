"""What `ecolens adapt` learns from: the site's labelled frames split (by a stable hash of each
path) into a part to fit on and a part held out, the base images mixed in and held out, the
checks that there are enough of each class, and their trunk features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from ecolens.convert.progress import progress
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import load_image, to_model_input
from ecolens.train.dataset import Sample, scan

if TYPE_CHECKING:
    from ecolens.train.adapt.model import ConcatenatedFeatures
    from ecolens.train.adapt.options import AdaptOptions

FOLDS = 5
MIN_PER_CLASS = 8  # labelled frames of each class needed on each side of the hold-out split
# below this many labelled frames of a class, the fitted threshold moves from run to run (on the
# synthetic dark chamber, 22 plastic frames gave 0.76-0.80 on hidden frames, 39 gave 0.85)
STEADY_PER_CLASS = 40

log = progress("adapt")


@dataclass(frozen=True)
class Frames:
    """The site's frames to fit on and held out, and the base images mixed in and held out."""

    field: list[Sample]
    fit: list[Sample]
    holdout: list[Sample]
    base_train: list[Sample]
    base_held: list[Sample]


def site_frames(options: AdaptOptions) -> Frames:
    """Scan the site's folder and the base folders (default: the shipped samples); a frame is
    held out when its path's bucket is below ``holdout_percent``, the same on every run."""
    from ecolens.models import calibration_dir, eval_dir

    if not 10 <= options.holdout_percent <= 80:
        raise EcoLensError("--holdout must be between 10 and 80 percent")
    field = scan(options.data, options.positive_folders)
    return Frames(
        field=field,
        fit=[s for s in field if s.bucket >= options.holdout_percent],
        holdout=[s for s in field if s.bucket < options.holdout_percent],
        base_train=scan(options.base_data or calibration_dir(), options.positive_folders),
        base_held=scan(options.base_eval or eval_dir(), options.positive_folders),
    )


def folds_of(samples: list[Sample]) -> np.ndarray:
    """Each frame's out-of-fold fold, from the same stable hash as the hold-out split."""
    return np.array([s.bucket % FOLDS for s in samples])


def labelled(samples: list[Sample], labels: tuple[str, ...]) -> np.ndarray:
    return np.array([labels.index(s.label) for s in samples], dtype=np.int64)


def check_counts(name: str, y: np.ndarray, labels: tuple[str, ...]) -> None:
    counts = np.bincount(y, minlength=len(labels))
    if counts.min() < MIN_PER_CLASS:
        described = ", ".join(f"{n} {label}" for label, n in zip(labels, counts))
        raise EcoLensError(
            f"{name} has {described}; adapt needs at least {MIN_PER_CLASS} of each class there "
            "(label more frames or change --holdout)"
        )


def labelling_advice(y: np.ndarray, labels: tuple[str, ...]) -> str | None:
    """A note when a class has enough labelled frames to run but too few for a steady threshold,
    so that the user labels more before trusting one run's figures."""
    counts = np.bincount(y, minlength=len(labels))
    few = [f"{n} {label}" for label, n in zip(labels, counts) if n < STEADY_PER_CLASS]
    if not few:
        return None
    return (
        f"only {' and '.join(few)} frames labelled: the threshold is steady from about "
        f"{STEADY_PER_CLASS} of each class (docs/field-adaptation.md, 'How many frames to label')"
    )


def extract(
    features: ConcatenatedFeatures, samples: list[Sample], spec: InputSpec, what: str, mirror: bool = False
) -> np.ndarray:
    """Trunk features of every sample (left-right mirrored with ``mirror``), in batches."""
    rows = []
    for start in range(0, len(samples), 32):
        images = (load_image(s.path) for s in samples[start : start + 32])
        batch = np.stack([to_model_input(rgb[:, ::-1] if mirror else rgb, spec) for rgb in images])
        rows.append(np.asarray(features.predict(batch, verbose=0), dtype=np.float64))
    log(f"features of {len(samples)} {what} images{' (mirrored)' if mirror else ''}")
    return np.concatenate(rows).reshape(len(samples), -1)
