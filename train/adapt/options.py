"""What a run of `ecolens adapt` is asked to do (the command's flags, as one value)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class AdaptOptions:
    base: Path
    data: Path
    out: Path  # the adapted .h5
    tflite: Path | None = None  # the deployable model written from it (None: not converted)
    base_data: Path | None = None  # base-domain training images to mix in (default: shipped sample)
    base_eval: Path | None = None  # base-domain held-out images (default: shipped eval sample)
    positive_folders: tuple[str, ...] = ("plastic",)
    holdout_percent: int = 33
    base_share: float | None = None  # weight of the base images against the frames (None: chosen)
    min_gain: float = 0.02  # balanced accuracy the adapted model must gain on held-out frames
    max_base_drop: float = 0.03  # balanced accuracy it may lose on held-out base images
    version: str | None = None
    seed: int = 1234
    # once the held-out comparison passed, choose again and fit the written model on every
    # labelled frame (held-out ones too): more frames to choose the threshold on
    refit_all: bool = True
