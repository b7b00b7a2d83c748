"""Copy the shipped sample images out of the TrashNet development set, deterministically.

- models/samples/eval/{plastic,non_plastic}/: validation-split images (never trained on) with
  hash bucket >= 90, used by `ecolens convert` validation, tests and the parity checks.
- models/samples/calibration/<material>/: every 12th training-split image, the int8
  representative dataset.
Usage: python scripts/make_samples.py [DATASET_DIR]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ecolens.train.dataset import scan

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "trashnet-112"


def main() -> int:
    dataset = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATASET
    samples = scan(dataset)
    target = REPO / "models" / "samples"
    for name in ("eval", "calibration"):
        shutil.rmtree(target / name, ignore_errors=True)
    train = [s for s in samples if s.split == "train"]
    for i, sample in enumerate(train):
        if i % 12 == 0:
            dest = target / "calibration" / sample.folder / sample.path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(sample.path, dest)
    for sample in samples:
        if sample.split == "validation" and sample.bucket >= 90:
            dest = target / "eval" / sample.label / f"{sample.folder}_{sample.path.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(sample.path, dest)
    shutil.copy2(dataset / "LICENSE", target / "LICENSE-TrashNet")
    for name in ("eval", "calibration"):
        count = sum(1 for p in (target / name).rglob("*.jpg"))
        print(f"{name}: {count} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
