"""The photos a recipe trains and is checked on: the deterministic train / validation split, the
photos at their own size, their domain-randomised views and out-of-domain versions, labels as
integers, and the weights of each view."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from ecolens.convert.labels import LABELS, POSITIVE_LABEL
from ecolens.convert.progress import progress
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import load_image, resize_for_model
from ecolens.train.dataset import Sample, scan
from ecolens.train.options import TrainOptions

log = progress("train")


def edge_input_spec(size: int) -> InputSpec:
    # Normalization lives inside the network (its first layer), so the edge feeds raw RGB;
    # letterbox keeps a 16:9 camera frame's items their true shape.
    return InputSpec(height=size, width=size, resize="letterbox")


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights: plastic is ~1/5 of TrashNet."""
    counts = np.bincount(labels, minlength=len(LABELS))
    return {i: float(len(labels) / (len(LABELS) * max(1, c))) for i, c in enumerate(counts)}


def label_array(samples: list[Sample]) -> np.ndarray:
    return np.array([LABELS.index(s.label) for s in samples], dtype=np.int32)


def load_arrays(samples: list[Sample], spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Images resized exactly as the edge resizes them (uint8), with integer labels."""
    images = np.stack([resize_for_model(rgb, spec) for rgb in photos(samples)])
    return images, label_array(samples)


def photos(samples: list[Sample]) -> list[np.ndarray]:
    """The photos at their own size (TrashNet's are 112x84: all of them fit in memory)."""
    return [load_image(s.path) for s in samples]


def ood_images(rgbs: list[np.ndarray], samples: list[Sample], variant: str) -> Iterator[np.ndarray]:
    from ecolens.train.ood import ood_image

    for rgb, sample in zip(rgbs, samples):
        yield ood_image(rgb, sample.relative, variant)


def select(options: TrainOptions) -> tuple[list[Sample], list[Sample]]:
    samples = scan(options.data, options.positive_folders)
    if options.limit:
        rng = np.random.default_rng(options.seed)
        samples = [samples[i] for i in sorted(rng.permutation(len(samples))[: options.limit])]
    train_set = [s for s in samples if s.split == "train"]
    val_set = [s for s in samples if s.split == "validation"]
    log(
        f"{len(samples)} images: {len(train_set)} train, {len(val_set)} validation "
        f"({sum(s.label == POSITIVE_LABEL for s in samples)} plastic)"
    )
    return train_set, val_set


def training_views(rgbs: list[np.ndarray], options: TrainOptions) -> Iterator[np.ndarray]:
    """Each training photo, then ``views - 1`` domain-randomised versions of it (seeded)."""
    from ecolens.train.augment import randomise
    from ecolens.train.board import item_alpha

    rng = np.random.default_rng(options.seed)
    for rgb in rgbs:
        alpha = item_alpha(rgb)
        yield rgb
        for _ in range(options.views - 1):
            yield randomise(rgb, alpha, rng)


def view_weights(y_train: np.ndarray, options: TrainOptions) -> np.ndarray:
    """Inverse class frequency, and each unaltered photo (view 0) weighted ``photo_weight`` times."""
    weights = class_weights(y_train)
    sample_weights = np.array([weights[int(c)] for c in y_train], dtype=np.float32)
    sample_weights[:: options.views] *= options.photo_weight
    return sample_weights
