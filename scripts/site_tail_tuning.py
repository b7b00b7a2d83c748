"""Tune the reference model's trunk tail on one site's labelled frames: the experiment behind
docs/field-adaptation.md's "Tuning the trunk per site (measured, not taken)".

    python scripts/site_tail_tuning.py WORK OUT.h5 [--tune-from 12] [--epochs 3] ...

WORK is a folder `ecolens benchmark adapt --work WORK` built (its `labelled/` camera frames and
`trashnet-train/` base images). Blocks ``--tune-from``-15, the head convolution and the head are
tuned on the labelled frames and the base images (each with a mirrored copy, class-balanced,
the base images weighing ``--base-share`` against the frames), with `ecolens train`'s ImageNet
distillation (train/tail.py, the same code). OUT.h5 keeps the reference model's metadata, so
`ecolens benchmark adapt --base OUT.h5` scores it on the same hidden frames; its "base" row is
the tuned model alone (its "adapted" row is not a fair check: adapt's own held-out frames were
tuned on here).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="a folder `ecolens benchmark adapt --work` built")
    parser.add_argument("out", type=Path, help="the tuned .h5 to write")
    parser.add_argument("--tune-from", type=int, default=12, help="first tuned block (8-15)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--distillation", type=float, default=2.0, help="weight of the ImageNet-logit loss")
    parser.add_argument("--base-share", type=float, default=2.0, help="base images' weight vs the frames")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ecolens.convert.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    from ecolens.convert.h5meta import read_h5_metadata, write_h5_metadata
    from ecolens.convert.labels import LABELS
    from ecolens.convert.loading import load_keras_model
    from ecolens.core.preprocess import load_image
    from ecolens.models import reference_h5
    from ecolens.train.adapt.fit import balanced_weights
    from ecolens.train.adapt.model import input_spec
    from ecolens.train.dataset import Sample, scan
    from ecolens.train.tail import TuneOptions, extract_frozen_part, frozen_part, tune

    keras.utils.set_random_seed(args.seed)
    loaded = load_keras_model(reference_h5())
    model, stored = loaded.model, read_h5_metadata(reference_h5())
    spec = input_spec(stored, loaded.input_size)
    frozen = frozen_part(model, args.tune_from)

    def images(samples: list[Sample], mirror: bool) -> Iterator[np.ndarray]:
        for sample in samples:
            rgb = load_image(sample.path)
            yield rgb[:, ::-1] if mirror else rgb

    maps, early, labels, weights = [], [], [], []
    for folder, share in (("labelled", 1.0), ("trashnet-train", args.base_share)):
        samples = scan(args.work / folder)
        y = np.array([LABELS.index(s.label) for s in samples])
        for mirror in (False, True):
            got = extract_frozen_part(frozen, images(samples, mirror), len(samples), spec, folder, np.float16)
            maps.append(got[0])
            early.append(got[1])
            labels.append(y)
            weights.append(balanced_weights(y, len(LABELS), share))
    w = np.concatenate(weights)
    started = time.monotonic()
    tune(
        model,
        model.get_layer("head"),
        ("pooled", "imagenet", "middle"),
        (np.concatenate(maps), np.concatenate(early)),
        np.concatenate(labels),
        (w / w.mean()).astype(np.float32),
        None,
        TuneOptions(
            epochs=args.epochs,
            first_block=args.tune_from,
            learning_rate=args.learning_rate,
            distillation=args.distillation,
            batch_size=32,
            seed=args.seed,
        ),
    )
    print(f"tuned in {time.monotonic() - started:.0f} s on {len(w)} rows", flush=True)
    model.save(args.out, include_optimizer=False)
    write_h5_metadata(args.out, stored)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
