"""The ``tuned`` recipe's trainable part: the last stages of the Lite0 trunk (by default blocks 8-15
and the 1x1 head convolution), tuned together with the head while a distillation loss keeps their
ImageNet logits close to the original network's.

Why: a linear head on the frozen trunk cannot separate clear plastic from glass well enough
(TrashNet validation 0.91 balanced accuracy), and fine-tuning the whole trunk on one studio's photos
forgets what ImageNet knows (0.53 out of domain). Tuning only the last stages, on the same
domain-randomised views, with the ImageNet logits tied to the teacher's, gained on both (validation
0.91 -> 0.92, out of domain 0.76 -> 0.80 in our runs; models/MODEL_CARD.md).

Everything before the first tuned block stays frozen, so its output (a 14x14x80 map per view at
224 px for block 8) is computed once and cached; an epoch then costs about half of a full forward
and backward pass.
The tail model reuses the feature model's own layers, so tuning it tunes the shipped graph.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

# Blocks from here on are tuned; the frozen part's last output (the map) and the pooled middle-stage
# taps before it are computed once per view and cached.
FIRST_TUNED_BLOCK = 8
LAST_BLOCK = 15
BLOCK_PARTS = ("expand", "expand_bn", "expand_relu6", "dw", "dw_bn", "dw_relu6", "project", "project_bn")
DISTILLATION_TEMPERATURE = 2.0


def log(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


def frozen_end(features: Any, first_block: int) -> str:
    """The layer whose output feeds the first tuned block."""
    names = {layer.name for layer in features.layers}
    before = first_block - 1
    return f"block{before}_add" if f"block{before}_add" in names else f"block{before}_project_bn"


def early_taps(features: Any, first_block: int) -> list[str]:
    """Middle-stage taps (pooled by the feature model) computed entirely by the frozen part."""
    from ecolens.train.features import MIDDLE_TAPS

    end = frozen_end(features, first_block)
    return [tap for tap in MIDDLE_TAPS if int(tap[5:].split("_")[0]) < first_block and tap != end]


@dataclass
class TuneOptions:
    epochs: int = 5
    first_block: int = FIRST_TUNED_BLOCK
    learning_rate: float = 3e-4
    distillation: float = 1.0  # weight of the ImageNet-logit distillation loss against the class loss
    batch_size: int = 64
    seed: int = 1234


def frozen_part(features: Any, first_block: int = FIRST_TUNED_BLOCK) -> Any:
    """Image -> [the map feeding ``first_block``, the pooled early taps concatenated]: what is cached."""
    import keras
    from keras import layers

    early = [features.get_layer(f"{tap}_pool").output for tap in early_taps(features, first_block)]
    joined = early[0] if len(early) == 1 else layers.Concatenate(name="early_taps")(early)
    return keras.Model(
        features.input,
        [features.get_layer(frozen_end(features, first_block)).output, joined],
        name="lite0_frozen_part",
    )


def tail_model(features: Any, first_block: int = FIRST_TUNED_BLOCK) -> Any:
    """[map, early taps] -> the feature model's three outputs (pooled, ImageNet logits, middle),
    built from the feature model's own layers (shared weights)."""
    import keras
    from keras import layers

    names = {layer.name for layer in features.layers}
    end = frozen_end(features, first_block)
    early = early_taps(features, first_block)
    map_shape = tuple(features.get_layer(end).output.shape[1:])
    early_width = sum(int(features.get_layer(f"{tap}_pool").output.shape[-1]) for tap in early)
    map_in = keras.Input(map_shape, name="frozen_map")
    early_in = keras.Input((early_width,), name="early_taps")
    x = map_in
    pooled_taps = [early_in]
    if f"{end}_pool" in names:
        pooled_taps.append(features.get_layer(f"{end}_pool")(map_in))
    for block in range(first_block, LAST_BLOCK + 1):
        shortcut = x
        for part in BLOCK_PARTS:
            x = features.get_layer(f"block{block}_{part}")(x)
            if part == "project_bn" and f"block{block}_project_bn_pool" in names:
                pooled_taps.append(features.get_layer(f"block{block}_project_bn_pool")(x))
        if f"block{block}_add" in names:
            x = features.get_layer(f"block{block}_add")([x, shortcut])
            if f"block{block}_add_pool" in names:
                pooled_taps.append(features.get_layer(f"block{block}_add_pool")(x))
    for name in ("head_conv", "head_bn", "head_relu6", "pool"):
        x = features.get_layer(name)(x)
    logits = features.get_layer("imagenet_logits")(x)
    middle = layers.Concatenate(name="tail_middle")(pooled_taps)
    return keras.Model([map_in, early_in], [x, logits, middle], name="lite0_tail")


def set_tunable(features: Any, first_block: int = FIRST_TUNED_BLOCK) -> int:
    """Convolutions of blocks >= first_block and the head convolution become trainable; BatchNorm
    stays frozen (statistics of 1,600 photos would replace ImageNet's). Returns the parameter count."""
    import keras

    count = 0
    for layer in features.layers:
        name = layer.name
        tuned = name == "head_conv" or (
            name.startswith("block") and int(name[5:].split("_")[0]) >= first_block
        )
        layer.trainable = tuned and not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable:
            count += sum(int(np.prod(w.shape)) for w in layer.weights)
    return count


def distillation_loss(teacher: Any, student: Any) -> Any:
    """KL(teacher || student) of the ImageNet logits at a soft temperature (Hinton et al.)."""
    import tensorflow as tf

    t = DISTILLATION_TEMPERATURE
    p = tf.nn.softmax(teacher / t)
    kl = tf.reduce_sum(p * (tf.nn.log_softmax(teacher / t) - tf.nn.log_softmax(student / t)), axis=-1)
    return tf.reduce_mean(kl) * t * t


def tune(
    features: Any,
    head: Any,
    groups: tuple[str, ...],
    train: tuple[np.ndarray, np.ndarray],
    labels: np.ndarray,
    sample_weights: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    options: TuneOptions,
) -> tuple[Any, Any]:
    """Tune tail + head end to end on cached (map, early taps); returns (the [map, taps] -> class
    logits model, the Keras History)."""
    import keras
    from ecolens.convert.labels import LABELS
    from keras import layers

    tail = tail_model(features, options.first_block)
    teacher = predict_in_chunks(tail, train, output=1)  # ImageNet logits of the untouched trunk
    tuned = set_tunable(features, options.first_block)
    log(f"tail: {tuned:,} parameters tuned (blocks {options.first_block}-{LAST_BLOCK} and the head conv)")
    map_in = keras.Input(train[0].shape[1:], name="frozen_map")
    early_in = keras.Input(train[1].shape[1:], name="early_taps")
    outputs = dict(zip(("pooled", "imagenet", "middle"), tail([map_in, early_in])))
    classes = layers.Identity(name="classes")(head([outputs[g] for g in groups]))
    imagenet = layers.Identity(name="imagenet")(outputs["imagenet"])
    model = keras.Model([map_in, early_in], [classes, imagenet], name="tail_and_head")
    steps_per_epoch = max(1, len(labels) // options.batch_size)
    model.compile(
        keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(options.learning_rate, options.epochs * steps_per_epoch)
        ),
        loss={
            "classes": keras.losses.CategoricalCrossentropy(from_logits=True),
            "imagenet": distillation_loss,
        },
        loss_weights={"classes": 1.0, "imagenet": options.distillation},
        metrics={"classes": [keras.metrics.CategoricalAccuracy(name="accuracy")]},
    )
    one_hot = keras.utils.to_categorical(labels, len(LABELS))
    validation_data = None
    if validation is not None and len(validation[2]):
        val_teacher = predict_in_chunks(tail, validation[:2], output=1)
        validation_data = (
            (validation[0], validation[1]),
            (keras.utils.to_categorical(validation[2], len(LABELS)), val_teacher),
        )
    history = model.fit(
        batches(train, one_hot, teacher, sample_weights, options),
        steps_per_epoch=steps_per_epoch,
        epochs=options.epochs,
        validation_data=validation_data,
        verbose=2,
    )
    history.history = {
        (
            "accuracy"
            if key == "classes_accuracy"
            else "val_accuracy"
            if key == "val_classes_accuracy"
            else key
        ): v
        for key, v in history.history.items()
    }
    return keras.Model([map_in, early_in], classes), history


def batches(
    train: tuple[np.ndarray, np.ndarray],
    one_hot: np.ndarray,
    teacher: np.ndarray,
    sample_weights: np.ndarray,
    options: TuneOptions,
) -> Iterator[tuple[Any, ...]]:
    """Shuffled batches, maps cast to float32 one batch at a time (the cache is float16)."""
    rng = np.random.default_rng(options.seed)
    ones = np.ones(options.batch_size, dtype=np.float32)
    while True:
        order = rng.permutation(len(one_hot))
        for start in range(0, len(order) - options.batch_size + 1, options.batch_size):
            index = np.sort(order[start : start + options.batch_size])
            yield (
                (train[0][index].astype(np.float32), train[1][index]),
                (one_hot[index], teacher[index]),
                (sample_weights[index], ones),
            )


def predict_in_chunks(
    model: Any, inputs: tuple[np.ndarray, np.ndarray], output: int | None = None
) -> np.ndarray:
    """model.predict over float16 maps without casting the whole cache to float32 at once."""
    parts = []
    for start in range(0, len(inputs[0]), 512):
        got = model.predict_on_batch(
            [inputs[0][start : start + 512].astype(np.float32), inputs[1][start : start + 512]]
        )
        parts.append(np.asarray(got[output] if output is not None else got))
    return np.concatenate(parts)


def extract_frozen_part(
    frozen: Any, images: Iterator[np.ndarray], count: int, spec: Any, what: str, map_dtype: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(maps, early taps) of ``count`` RGB images of any size, resized as the edge resizes them."""
    from ecolens.core.preprocess import resize_for_model

    map_shape = tuple(int(d) for d in frozen.outputs[0].shape[1:])
    maps = np.empty((count, *map_shape), dtype=map_dtype)
    early = np.empty((count, int(frozen.outputs[1].shape[-1])), dtype=np.float32)
    batch: list[np.ndarray] = []
    done = 0

    def flush() -> None:
        nonlocal done
        got = frozen.predict_on_batch(np.stack(batch).astype(np.float32))
        maps[done : done + len(batch)] = np.asarray(got[0])
        early[done : done + len(batch)] = np.asarray(got[1])
        done += len(batch)
        batch.clear()
        if done % 2048 < 64 or done == count:
            log(f"frozen part, {what}: {done}/{count}")

    for rgb in images:
        batch.append(resize_for_model(rgb, spec))
        if len(batch) == 64:
            flush()
    if batch:
        flush()
    if done != count:
        raise ValueError(f"expected {count} images for {what}, got {done}")
    return maps, early


def features_from(tail: Any, inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The feature matrix (pooled | ImageNet logits | middle), laid out as features.extract makes it."""
    parts: list[np.ndarray] = []
    for start in range(0, len(inputs[0]), 512):
        got = tail.predict_on_batch(
            [inputs[0][start : start + 512].astype(np.float32), inputs[1][start : start + 512]]
        )
        parts.append(np.concatenate([np.asarray(g) for g in got], axis=1))
    return np.concatenate(parts)
