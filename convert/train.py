"""`ecolens train`: the seed team's workflow (image folders -> Keras CNN -> HDF5), done well.

Transfer learning from ImageNet EfficientNet-Lite0: the head first with the trunk frozen,
then the whole network at a low learning rate with BatchNorm statistics frozen (small data).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.dataset import LABELS, POSITIVE_LABEL, Sample, scan
from ecolens.convert.h5meta import write_h5_metadata
from ecolens.convert.metrics import classification_metrics
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import load_image, resize_for_model


@dataclass
class TrainOptions:
    data: Path
    out: Path
    size: int = 160
    backbone: str = "efficientnet_lite0"  # or "scratch" (small CNN, no pretrained weights)
    head_epochs: int = 3
    fine_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-4
    seed: int = 1234
    label_smoothing: float = 0.0
    dropout: float = 0.3
    positive_folders: tuple[str, ...] = ("plastic",)
    name: str = "ecolens-plastic"
    version: str = "1.0.0"
    limit: int | None = None  # at most this many images (quick runs and tests)


def log(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


def load_arrays(samples: list[Sample], spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Images resized exactly as the edge resizes them (uint8), with integer labels."""
    images = np.empty((len(samples), spec.height, spec.width, 3), dtype=np.uint8)
    for i, sample in enumerate(samples):
        images[i] = resize_for_model(load_image(sample.path), spec)
        if (i + 1) % 250 == 0 or i + 1 == len(samples):
            log(f"loaded {i + 1}/{len(samples)} images")
    labels = np.array([LABELS.index(s.label) for s in samples], dtype=np.int32)
    return images, labels


def augmenter(seed: int) -> Any:
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical", seed=seed),
            layers.RandomRotation(0.08, fill_mode="reflect", seed=seed),
            layers.RandomZoom((-0.15, 0.1), fill_mode="reflect", seed=seed),
            layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed),
            layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
            layers.RandomContrast(0.15, seed=seed),
        ],
        name="augmentation",
    )


def scratch_trunk(size: int) -> Any:
    """The seed team's kind of small CNN, for comparison and fast tests."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for filters in (16, 32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(x), name="scratch_cnn")


def build_model(options: TrainOptions) -> tuple[Any, Any]:
    """(full model, trunk) with a softmax head over LABELS."""
    import keras
    from keras import layers

    if options.backbone == "efficientnet_lite0":
        from ecolens.convert.backbone import build_lite0, load_lite0_state_dict

        trunk = build_lite0(options.size, load_lite0_state_dict())
    elif options.backbone == "scratch":
        trunk = scratch_trunk(options.size)
    else:
        raise ValueError(f"unknown backbone {options.backbone!r}")
    x = layers.Dropout(options.dropout, name="head_dropout")(trunk.output)
    outputs = layers.Dense(len(LABELS), activation="softmax", name="classes")(x)
    return keras.Model(trunk.input, outputs, name=options.name.replace("-", "_")), trunk


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights: plastic is ~1/5 of TrashNet."""
    counts = np.bincount(labels, minlength=len(LABELS))
    return {i: float(len(labels) / (len(LABELS) * max(1, c))) for i, c in enumerate(counts)}


def edge_input_spec(size: int) -> InputSpec:
    # Normalization lives inside the network (its first layer), so the edge feeds raw RGB.
    return InputSpec(height=size, width=size, resize="stretch")


def train(options: TrainOptions) -> dict[str, Any]:
    """Train, evaluate on the validation split, save HDF5 atomically; returns the metrics."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(options.seed)
    spec = edge_input_spec(options.size)
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
    x_train, y_train = load_arrays(train_set, spec)
    x_val, y_val = load_arrays(val_set, spec)

    augment = augmenter(options.seed)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=options.seed, reshuffle_each_iteration=True)
        .batch(options.batch_size)
        .map(
            lambda x, y: (augment(tf.cast(x, tf.float32), training=True), tf.one_hot(y, len(LABELS))),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    val_ds = tf.data.Dataset.from_tensor_slices(
        (x_val.astype(np.float32), tf.one_hot(y_val, len(LABELS)))
    ).batch(64)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing)
    weights = class_weights(y_train)
    verbose = 1 if sys.stderr.isatty() else 2

    model, trunk = build_model(options)
    started = time.time()
    if options.head_epochs > 0:
        log(f"stage 1: head only, {options.head_epochs} epochs")
        trunk.trainable = False
        model.compile(
            keras.optimizers.Adam(1e-3),
            loss=loss,
            metrics=["accuracy"],
        )
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=options.head_epochs,
            class_weight=weights,
            verbose=verbose,
        )
    if options.fine_epochs > 0:
        log(f"stage 2: whole network, {options.fine_epochs} epochs (BatchNorm frozen)")
        trunk.trainable = True
        for layer in trunk.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        steps = options.fine_epochs * int(np.ceil(len(x_train) / options.batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(options.learning_rate, steps)
        model.compile(
            keras.optimizers.Adam(schedule),
            loss=loss,
            metrics=["accuracy"],
        )
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=options.fine_epochs,
            class_weight=weights,
            verbose=verbose,
        )
    log(f"trained in {time.time() - started:.0f} s")

    probabilities = model.predict(x_val.astype(np.float32), batch_size=64, verbose=0)
    predicted = [LABELS[i] for i in probabilities.argmax(axis=1)]
    metrics = classification_metrics([s.label for s in val_set], predicted, LABELS, POSITIVE_LABEL)
    metrics.update(
        split="validation",
        train_images=len(train_set),
        backbone=options.backbone,
        input_size=options.size,
        seed=options.seed,
    )
    save_h5(model, options, spec)
    options.out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(
        f"validation: balanced accuracy {metrics['balanced_accuracy']:.3f}, plastic precision "
        f"{metrics['precision']:.3f} recall {metrics['recall']:.3f} F1 {metrics['f1']:.3f}"
    )
    log(f"saved {options.out}")
    return metrics


def save_h5(model: Any, options: TrainOptions, spec: InputSpec) -> None:
    """HDF5 as the seed team saved it (model.save("x.h5")), plus EcoLens metadata, atomically."""
    options.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".h5", dir=options.out.parent, prefix=".tmp-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        model.save(tmp, include_optimizer=False)  # weights only: a third of the size
        os.chmod(tmp, 0o644)
        write_h5_metadata(
            tmp,
            {
                "name": options.name,
                "version": options.version,
                "labels": list(LABELS),
                "positive_label": POSITIVE_LABEL,
                "input": {
                    "height": spec.height,
                    "width": spec.width,
                    "color_order": spec.color_order,
                    "resize": spec.resize,
                    "mean": list(spec.mean),
                    "std": list(spec.std),
                },
                "output": "probabilities",
            },
        )
        os.replace(tmp, options.out)
    finally:
        tmp.unlink(missing_ok=True)
