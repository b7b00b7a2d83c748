"""Which photos calibrate a conversion and which prove it: photos of the model's own domain.

A model is judged on the photos it will see. `--calibration DIR` (the user's photos) is split by
a stable hash of each file's path into photos that calibrate and held-out photos that prove, so
the proof never runs on a photo calibration used; `--eval` replaces the held-out part. The shipped
TrashNet samples stand in only for EcoLens's own models (the .h5 metadata `ecolens train` writes),
never for a model adapted to one site's camera (`needs_site_frames` in its metadata)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecolens.core.errors import EcoLensError
from ecolens.core.preprocess import find_images

# Share of --calibration held out for the proof when no --eval is given (by file-path hash).
PROOF_PERCENT = 30
# Fewer held-out photos than this and the proof would say little: ask for more photos.
MIN_PROOF_PHOTOS = 10
SITE_FRAMES_KEY = "needs_site_frames"


@dataclass(frozen=True)
class PhotoPlan:
    """Where calibration and proof photos come from (paths below their folders)."""

    calibration_folder: Path
    calibration_paths: list[Path]
    eval_folder: Path
    eval_paths: list[Path]
    source: str  # for the report: why these photos


def bucket(path: Path, root: Path) -> int:
    """0..99, stable for a file's path below ``root``."""
    relative = path.relative_to(root).as_posix()
    return int(hashlib.sha256(f"proof:{relative}".encode()).hexdigest(), 16) % 100


def split(folder: Path) -> tuple[list[Path], list[Path]]:
    """(calibration, held-out proof) images of ``folder``, by a stable hash of each path."""
    files = images_of(folder, "calibration")
    held = [p for p in files if bucket(p, folder) < PROOF_PERCENT]
    return [p for p in files if bucket(p, folder) >= PROOF_PERCENT], held


def images_of(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise EcoLensError(f"{what} folder not found: {folder}")
    files = find_images(folder)
    if not files:
        raise EcoLensError(f"{what} folder {folder} holds no images (.jpg, .png, ...)")
    return files


def is_own_model(stored: dict[str, Any]) -> bool:
    """Trained by `ecolens train` on waste photos: the shipped samples are its domain."""
    return bool(stored.get("labels")) and bool(stored.get("input")) and not stored.get(SITE_FRAMES_KEY)


def plan(
    source: Path, stored: dict[str, Any], calibration: Path | None, evaluation: Path | None
) -> PhotoPlan:
    """The photos to calibrate and prove on, or one line asking for ``--calibration``."""
    from ecolens.models import calibration_dir, eval_dir

    if calibration is None and stored.get(SITE_FRAMES_KEY):
        raise EcoLensError(
            f"{source} was adapted to one site's camera by `ecolens adapt`: pass --calibration with "
            f"that site's frames (the folder given to adapt --data), or deploy the .tflite adapt wrote"
        )
    if calibration is None and not is_own_model(stored):
        raise EcoLensError(
            f"{source} is not an EcoLens model: pass --calibration DIR with a few hundred photos of "
            "what it classifies (class sub-folders named like its labels make the proof an accuracy "
            "check); the shipped waste samples prove only EcoLens's own models"
        )
    if calibration is None:
        folder = evaluation or eval_dir()
        return PhotoPlan(
            calibration_dir(),
            images_of(calibration_dir(), "calibration"),
            folder,
            images_of(folder, "evaluation"),
            "shipped samples (an EcoLens model)" if evaluation is None else f"--eval {folder}",
        )
    if evaluation is not None:
        return PhotoPlan(
            calibration,
            images_of(calibration, "calibration"),
            evaluation,
            images_of(evaluation, "evaluation"),
            f"--eval {evaluation}",
        )
    calibrate, held = split(calibration)
    if len(held) < MIN_PROOF_PHOTOS or not calibrate:
        raise EcoLensError(
            f"{calibration} holds {len(calibrate) + len(held)} images: too few to hold "
            f"{PROOF_PERCENT} % out for the proof (at least {MIN_PROOF_PHOTOS}); add photos or pass --eval"
        )
    return PhotoPlan(
        calibration,
        calibrate,
        calibration,
        held,
        f"{len(held)} photos of --calibration held out from calibration (file-path hash)",
    )
