"""Score models on TrashNet validation and on the out-of-domain set (train/ood.py), side by side,
in one run: the same photos and the same transformed images for every model.

    python scripts/evaluate_ood.py MODEL [MODEL ...] [--data DIR] [--json OUT.json]

MODEL is a .tflite (run as the edge runs it: its metadata's resize, LiteRT) or a Keras .h5 with
`ecolens train` metadata (float reference). Prints balanced accuracy, plastic F1, ECE and the share
of wrong answers with confidence above 0.9, overall and per variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "trashnet-112"


def predictor(path: Path) -> Callable[[list[np.ndarray]], np.ndarray]:
    """Probabilities of a list of RGB images, preprocessed as the model's metadata says."""
    from ecolens.core.preprocess import to_model_input

    if path.suffix == ".tflite":
        from ecolens.core.classifier import Classifier

        classifier = Classifier(path, threads=1)
        return lambda rgbs: np.stack([classifier.predict(rgb)[0] for rgb in rgbs])
    from ecolens.convert.h5meta import read_h5_metadata
    from ecolens.convert.loading import load_keras_model
    from ecolens.core.metadata import InputSpec

    stored = read_h5_metadata(path)["input"]
    spec = InputSpec(
        height=stored["height"],
        width=stored["width"],
        resize=stored.get("resize", "stretch"),
        mean=tuple(stored["mean"]),
        std=tuple(stored["std"]),
    )
    model = load_keras_model(path).model
    return lambda rgbs: np.asarray(
        model.predict(np.stack([to_model_input(rgb, spec) for rgb in rgbs]), batch_size=64, verbose=0)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument(
        "--all-photos",
        action="store_true",
        help="score every photo of --data (a site's own labelled crops), not only its validation split",
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ecolens.convert.labels import LABELS
    from ecolens.core.errors import EcoLensError
    from ecolens.core.preprocess import load_image
    from ecolens.train.dataset import scan
    from ecolens.train.ood import VARIANTS, ood_image
    from ecolens.train.report import scored

    for model in args.models:
        if not model.is_file():
            print(f"error: model file not found: {model}", file=sys.stderr)
            return 2
    try:
        val = [s for s in scan(args.data) if args.all_photos or s.split == "validation"]
    except EcoLensError as exc:
        print(f"error: {exc} (pass --data)", file=sys.stderr)
        return 2
    labels = np.array([LABELS.index(s.label) for s in val])
    rgbs = [load_image(s.path) for s in val]
    sets = {"validation": rgbs}
    for variant in VARIANTS:
        sets[variant] = [ood_image(rgb, s.relative, variant) for rgb, s in zip(rgbs, val)]
    print(f"{len(val)} photos, {len(VARIANTS)} out-of-domain variants of each", file=sys.stderr)
    results = {}
    for model in args.models:
        predict = predictor(model)
        probabilities = {name: predict(images) for name, images in sets.items()}
        ood = np.concatenate([probabilities[v] for v in VARIANTS])
        results[str(model)] = {
            "validation": scored(probabilities["validation"], labels),
            "ood": scored(ood, np.tile(labels, len(VARIANTS))),
            "variants": {v: scored(probabilities[v], labels)["balanced_accuracy"] for v in VARIANTS},
        }
        print(f"scored {model}", file=sys.stderr)
    print(
        "| model | val bal. acc | val plastic F1 | val ECE | OOD bal. acc | OOD plastic F1 | OOD ECE "
        "| OOD wrong with conf > 0.9 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        v, o = r["validation"], r["ood"]
        print(
            f"| {Path(name).name} | {v['balanced_accuracy']:.3f} | {v['f1']:.3f} | {v['ece']:.3f} "
            f"| {o['balanced_accuracy']:.3f} | {o['f1']:.3f} | {o['ece']:.3f} "
            f"| {o['confident_wrong_share']:.2f} |"
        )
    print("\n| model | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for name, r in results.items():
        print(f"| {Path(name).name} | " + " | ".join(f"{r['variants'][v]:.3f}" for v in VARIANTS) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
