"""Single-image latency and MACs of .tflite models in one run, on the same images, rounds
interleaved so that a busy machine slows every model alike.

    python scripts/compare_latency.py OLD.tflite NEW.tflite [--rounds 7] [--count 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from ecolens.bench.models import round_medians
    from ecolens.core.classifier import Classifier
    from ecolens.core.preprocess import find_images, load_image
    from ecolens.models import eval_dir
    from tflite_macs import count_macs

    for model in args.models:
        if not model.is_file():
            print(f"error: model file not found: {model}", file=sys.stderr)
            return 2
    rgbs = [load_image(p) for p in find_images(eval_dir())[: args.count]]
    classifiers = {m: Classifier(m, threads=args.threads) for m in args.models}
    medians: dict[Path, list[float]] = {m: [] for m in args.models}
    for _ in range(args.rounds):
        for model, classifier in classifiers.items():
            medians[model] += round_medians(lambda rgb, c=classifier: c.predict(rgb), rgbs, 1)
    print(f"{len(rgbs)} images, {args.rounds} rounds, {args.threads} interpreter thread(s)")
    print(f"{'model':<44} {'input':>9} {'M MACs':>8} {'median ms':>10} {'min..max of rounds':>20}")
    for model, values in medians.items():
        macs, spec = count_macs(model)
        shape = "x".join(str(d) for d in spec["shape"][1:3])
        print(
            f"{model.name:<44} {shape:>9} {sum(macs.values()) / 1e6:>8.1f} "
            f"{statistics.median(values):>10.2f} {min(values):>9.2f}..{max(values):<9.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
