"""Image folders -> labelled file lists with a deterministic split.

The split depends only on each file's path relative to the data root (a SHA-256 bucket),
so it is the same on every machine, every run, and whatever files are added later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ecolens.convert.labels import LABELS, NEGATIVE_LABEL, POSITIVE_LABEL
from ecolens.core.errors import EcoLensError
from ecolens.core.preprocess import find_images

VALIDATION_PERCENT = 20


@dataclass(frozen=True)
class Sample:
    path: Path
    relative: str
    folder: str
    label: str

    @property
    def bucket(self) -> int:
        """0..99, stable for a given relative path."""
        return int(hashlib.sha256(self.relative.encode()).hexdigest(), 16) % 100

    @property
    def split(self) -> str:
        return "validation" if self.bucket >= 100 - VALIDATION_PERCENT else "train"


def binary_label(folder: str, positive_folders: Iterable[str]) -> str:
    """TrashNet's six materials -> plastic / non_plastic."""
    return POSITIVE_LABEL if folder in set(positive_folders) else NEGATIVE_LABEL


def scan(root: str | Path, positive_folders: Iterable[str] = ("plastic",)) -> list[Sample]:
    """Class sub-folders of ``root`` -> samples labelled plastic / non_plastic."""
    root = Path(root)
    if not root.is_dir():
        raise EcoLensError(f"data folder not found: {root}")
    positive_folders = tuple(positive_folders)
    samples = []
    for path in find_images(root):
        relative = path.relative_to(root)
        if len(relative.parts) < 2:
            continue  # images directly in the root have no class folder
        folder = relative.parts[0]
        samples.append(Sample(path, relative.as_posix(), folder, binary_label(folder, positive_folders)))
    if not samples:
        raise EcoLensError(f"no images in class sub-folders of {root}")
    labels = {s.label for s in samples}
    if labels != set(LABELS):
        raise EcoLensError(
            f"{root} needs images of both classes; found only {sorted(labels)} "
            f"(positive folders: {', '.join(positive_folders)})"
        )
    return samples
