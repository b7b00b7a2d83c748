"""Reading `ecolens classify` output and choosing which sample images an emulated run gets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ecolens.core.preprocess import find_images

# Emulation costs about 1.4 s per image: compare this many images per class, or "all".
SAMPLES_ENV = "ECOLENS_ARM64_SAMPLES"
DEFAULT_SAMPLES_PER_CLASS = 12


def chosen_images(eval_dir: Path, x86_results: dict[str, dict]) -> list[Path]:
    """Which sample images the emulated run classifies: every one with
    ``ECOLENS_ARM64_SAMPLES=all``, else per class the least confident half on x86 (where an
    arithmetic difference would show first; saturated 0/1 scores hide it) and an even spread
    of the rest. Sorted, so every run and every target uses the same images."""
    wanted = os.environ.get(SAMPLES_ENV, str(DEFAULT_SAMPLES_PER_CLASS)).strip().lower()
    images = find_images(eval_dir)
    if wanted == "all":
        return images
    if not wanted.isdigit() or int(wanted) < 1:
        raise pytest.UsageError(f"{SAMPLES_ENV} must be a positive number or 'all'")
    per_class = int(wanted)
    chosen: list[Path] = []
    for folder in sorted({image.parent for image in images}):
        members = [image for image in images if image.parent == folder]
        by_confidence = sorted(members, key=lambda p: x86_results[str(p)]["confidence"])
        uncertain = by_confidence[: per_class // 2]
        rest = [image for image in members if image not in uncertain]
        step = max(1, len(rest) // max(1, per_class - len(uncertain)))
        chosen += uncertain + rest[::step][: per_class - len(uncertain)]
    return sorted(chosen)


def parse_results(stdout: str) -> dict[str, dict]:
    """One JSON result per line, keyed by the image path (``source``)."""
    results = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {result["source"]: result for result in results}
