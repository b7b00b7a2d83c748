"""The ``finetune`` recipe (default for the small scratch CNN): the head with the trunk frozen,
then the whole network at a low learning rate with Keras' own augmentation, BatchNorm frozen."""

from __future__ import annotations

from typing import Any

import numpy as np
from ecolens.convert.labels import LABELS
from ecolens.convert.progress import progress
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import resize_for_model
from ecolens.train.dataset import Sample
from ecolens.train.options import Trained, TrainOptions
from ecolens.train.photos import class_weights, label_array, load_arrays, ood_images, photos

log = progress("train")


def train_finetune(
    options: TrainOptions, spec: InputSpec, train_set: list[Sample], val_set: list[Sample]
) -> Trained:
    """Head with the trunk frozen, then the whole network at a low learning rate, BatchNorm frozen."""
    import keras
    import tensorflow as tf
    from ecolens.train.curves import epochs_of
    from ecolens.train.ood import VARIANTS
    from keras import layers

    x_train, y_train = load_arrays(train_set, spec)
    val_rgbs = photos(val_set)
    x_val = np.stack([resize_for_model(rgb, spec) for rgb in val_rgbs]).astype(np.float32)
    augment = keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical", seed=options.seed),
            layers.RandomRotation(0.08, fill_mode="reflect", seed=options.seed),
            layers.RandomZoom((-0.15, 0.1), fill_mode="reflect", seed=options.seed),
            layers.RandomBrightness(0.15, value_range=(0, 255), seed=options.seed),
            layers.RandomContrast(0.15, seed=options.seed),
        ],
        name="augmentation",
    )
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=options.seed, reshuffle_each_iteration=True)
        .batch(options.batch_size)
        .map(lambda x, y: (augment(tf.cast(x, tf.float32), training=True), tf.one_hot(y, len(LABELS))))
        .prefetch(tf.data.AUTOTUNE)
    )
    val_ds = (
        tf.data.Dataset.from_tensor_slices((x_val, tf.one_hot(label_array(val_set), len(LABELS)))).batch(64)
        if len(val_set)
        else None
    )
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=options.label_smoothing)
    accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    curves: list[dict[str, Any]] = []
    trunk = build_trunk(options)
    x = layers.Dropout(options.dropout, name="head_dropout")(trunk.output)
    class_logits = layers.Dense(len(LABELS), name="class_logits")(x)
    model = keras.Model(trunk.input, class_logits)
    weights = class_weights(y_train)
    head_epochs = options.head_epochs if options.head_epochs is not None else 3
    if head_epochs > 0:
        log(f"stage 1: head only, {head_epochs} epochs")
        trunk.trainable = False
        model.compile(keras.optimizers.Adam(1e-3), loss=loss, metrics=[accuracy])
        history = model.fit(
            train_ds, epochs=head_epochs, class_weight=weights, validation_data=val_ds, verbose=2
        )
        curves += epochs_of(history, "head")
    if options.fine_epochs > 0:
        log(f"stage 2: whole network, {options.fine_epochs} epochs (BatchNorm frozen)")
        trunk.trainable = True
        for layer in trunk.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        steps = options.fine_epochs * int(np.ceil(len(x_train) / options.batch_size))
        model.compile(
            keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(options.learning_rate, steps)),
            loss=loss,
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        history = model.fit(
            train_ds, epochs=options.fine_epochs, class_weight=weights, validation_data=val_ds, verbose=2
        )
        curves += epochs_of(history, "whole network")
    logits = {"validation": model.predict(x_val, batch_size=64, verbose=0)}
    for variant in VARIANTS:
        images = np.stack([resize_for_model(r, spec) for r in ood_images(val_rgbs, val_set, variant)])
        logits[variant] = model.predict(images.astype(np.float32), batch_size=64, verbose=0)
    return trunk.input, class_logits, logits, curves


def build_trunk(options: TrainOptions) -> Any:
    if options.backbone == "efficientnet_lite0":
        from ecolens.train.backbone import build_lite0, load_lite0_state_dict

        return build_lite0(options.size, load_lite0_state_dict())
    if options.backbone == "scratch":
        return scratch_trunk(options.size)
    raise EcoLensError(f"unknown backbone {options.backbone!r}")


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
