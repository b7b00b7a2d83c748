"""`ecolens train`: the seed team's workflow (image folders -> Keras CNN -> HDF5), done well.

Two recipes:
- ``frozen`` (default for EfficientNet-Lite0): the ImageNet trunk stays frozen; a linear head reads
  its pooled features AND its ImageNet logits, trained on many domain-randomised views of each photo
  (convert/augment.py). Fine-tuning on one studio's photos destroyed what ImageNet knows; this keeps it.
- ``finetune`` (default for the small scratch CNN): the whole network trained end to end.
Both are then calibrated (temperature fitted on validation, applied inside the saved graph) and
evaluated on plain validation AND on the out-of-domain set of convert/ood.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.h5meta import write_h5_metadata
from ecolens.convert.labels import LABELS, POSITIVE_LABEL
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import load_image, resize_for_model
from ecolens.train.curves import write_curves
from ecolens.train.dataset import Sample, scan
from ecolens.train.report import evaluation_report, log_report

RECIPES = ("tuned", "frozen", "finetune")


@dataclass
class TrainOptions:
    data: Path
    out: Path
    size: int = 224
    backbone: str = "efficientnet_lite0"  # or "scratch" (small CNN, no pretrained weights)
    recipe: str | None = None  # default: frozen for efficientnet_lite0, finetune for scratch
    head_epochs: int | None = None  # default: 15 (frozen), 3 (finetune)
    fine_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-4
    seed: int = 1234
    label_smoothing: float = 0.0
    dropout: float = 0.3
    views: int = 12  # frozen: training views per photo (the photo itself + randomised ones)
    features: str = "all"  # frozen: all, both (pooled + imagenet), pooled or imagenet
    l2: float = 1e-2  # frozen: weight decay of the head
    photo_weight: float = 8.0  # frozen: weight of each unaltered photo against one randomised view
    cache: Path | None = None  # frozen: folder for extracted features
    positive_folders: tuple[str, ...] = ("plastic",)
    name: str = "ecolens-plastic"
    version: str = "1.0.0"
    limit: int | None = None  # at most this many images (quick runs and tests)
    tune_from: int = 8  # tuned: first trunk block tuned (blocks before it stay frozen)
    tune_epochs: int = 5  # tuned: epochs of the tuned blocks + head after the linear head
    tune_learning_rate: float = 3e-4  # tuned: peak learning rate (cosine decay)
    distillation: float = 1.0  # tuned: weight of the ImageNet-logit distillation loss

    @property
    def chosen_recipe(self) -> str:
        return self.recipe or ("tuned" if self.backbone == "efficientnet_lite0" else "finetune")


def log(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


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


# A recipe returns the image input and logits tensor of the trained graph, the logits of the
# validation photos and of each out-of-domain variant, and its per-epoch curves (convert/curves.py).
Trained = tuple[Any, Any, dict[str, np.ndarray], list[dict[str, Any]]]


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


def fit_linear_head(
    options: TrainOptions,
    groups: tuple[str, ...],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> tuple[Any, Any]:
    """The grouped linear head (convert/head.py) on feature matrices; returns (head, History)."""
    import keras
    from ecolens.train.features import split
    from ecolens.train.head import build_head

    def inputs(x: np.ndarray) -> list[np.ndarray]:
        parts = split(x)
        return [parts[g] for g in groups]

    train_inputs = inputs(x_train)
    head = build_head(dict(zip(groups, train_inputs)), options.dropout, options.l2)
    epochs = options.head_epochs if options.head_epochs is not None else 15
    log(f"head on {options.features} features: {len(y_train)} views, {epochs} epochs, L2 {options.l2}")
    steps = epochs * int(np.ceil(len(y_train) / 256))
    head.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=options.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    history = head.fit(
        train_inputs,
        keras.utils.to_categorical(y_train, len(LABELS)),
        sample_weight=view_weights(y_train, options),
        batch_size=256,
        epochs=epochs,
        shuffle=True,
        validation_data=(inputs(x_val), keras.utils.to_categorical(y_val, len(LABELS)))
        if len(y_val)
        else None,
        verbose=2,
    )
    return head, history


def frozen_backbone(options: TrainOptions) -> Any:
    from ecolens.train.backbone import load_lite0_state_dict
    from ecolens.train.features import feature_model
    from ecolens.train.head import FEATURE_GROUPS

    if options.backbone != "efficientnet_lite0":
        raise EcoLensError(f"the {options.chosen_recipe} recipe needs the efficientnet_lite0 backbone")
    if options.features not in FEATURE_GROUPS:
        raise EcoLensError(f"unknown feature group {options.features!r}: one of {', '.join(FEATURE_GROUPS)}")
    return feature_model(options.size, load_lite0_state_dict())


def train_frozen(
    options: TrainOptions, spec: InputSpec, train_set: list[Sample], val_set: list[Sample]
) -> Trained:
    """Frozen Lite0 features of domain-randomised views -> linear head."""
    from ecolens.train.curves import epochs_of
    from ecolens.train.features import cached, extract, split
    from ecolens.train.head import FEATURE_GROUPS, compose
    from ecolens.train.ood import VARIANTS

    features = frozen_backbone(options)
    train_rgbs, val_rgbs = photos(train_set), photos(val_set)
    key = {"size": options.size, "resize": spec.resize, "version": 3}
    count = len(train_set) * options.views
    x_train = cached(
        options.cache,
        {
            **key,
            "what": "train",
            "files": [s.relative for s in train_set],
            "views": options.views,
            "seed": options.seed,
        },
        lambda: extract(
            features,
            training_views(train_rgbs, options),
            count,
            spec,
            f"{options.views} views of {len(train_set)} training photos",
        ),
    )
    y_train = np.repeat(label_array(train_set), options.views)
    val_keys = [s.relative for s in val_set]
    evaluation = {
        "validation": cached(
            options.cache,
            {**key, "what": "validation", "files": val_keys},
            lambda: extract(features, iter(val_rgbs), len(val_set), spec, "validation photos"),
        )
    }
    for variant in VARIANTS:
        evaluation[variant] = cached(
            options.cache,
            {**key, "what": f"ood-{variant}", "files": val_keys},
            lambda v=variant: extract(
                features, ood_images(val_rgbs, val_set, v), len(val_set), spec, f"ood {v}"
            ),
        )
    groups = FEATURE_GROUPS[options.features]
    head, history = fit_linear_head(
        options, groups, x_train, y_train, evaluation["validation"], label_array(val_set)
    )
    logits = {
        name: np.asarray(head.predict([split(x)[g] for g in groups], batch_size=1024, verbose=0))
        for name, x in evaluation.items()
    }
    image, class_logits = compose(features, head, groups)
    check_graph(image, class_logits, val_rgbs[:4], spec, logits["validation"][:4])
    return image, class_logits, logits, epochs_of(history, "head")


def train_tuned(
    options: TrainOptions, spec: InputSpec, train_set: list[Sample], val_set: list[Sample]
) -> Trained:
    """The frozen recipe's linear head first, then blocks tune_from-15 + head tuned end to end with
    ImageNet-logit distillation (convert/tail.py), on cached outputs of the frozen blocks before it."""
    from ecolens.train.curves import epochs_of
    from ecolens.train.features import cached
    from ecolens.train.head import FEATURE_GROUPS, compose
    from ecolens.train.ood import VARIANTS
    from ecolens.train.tail import (
        TuneOptions,
        extract_frozen_part,
        features_from,
        frozen_part,
        tail_model,
        tune,
    )

    features = frozen_backbone(options)
    frozen = frozen_part(features, options.tune_from)
    train_rgbs, val_rgbs = photos(train_set), photos(val_set)
    key = {"size": options.size, "resize": spec.resize, "version": 1, "tune_from": options.tune_from}

    def cached_pair(
        name: str, images: Callable[[], Iterator[np.ndarray]], count: int, dtype: Any, extra: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(maps, early taps) of one set of images, each cached under its own key."""
        computed: list[tuple[np.ndarray, np.ndarray]] = []

        def compute(index: int) -> np.ndarray:
            if not computed:
                computed.append(extract_frozen_part(frozen, images(), count, spec, name, dtype))
            return computed[0][index]

        return (
            cached(options.cache, {**key, **extra, "what": f"{name}-map"}, lambda: compute(0)),
            cached(options.cache, {**key, **extra, "what": f"{name}-early"}, lambda: compute(1)),
        )

    train_files = {"files": [s.relative for s in train_set], "views": options.views, "seed": options.seed}
    log(f"{options.views} views of {len(train_set)} photos through frozen blocks 0-{options.tune_from - 1}")
    train_maps = cached_pair(
        "train",
        lambda: training_views(train_rgbs, options),
        len(train_set) * options.views,
        np.float16,  # 19,440 maps of 14x14x80 (block 8): 0.61 GB in float16
        train_files,
    )
    y_train = np.repeat(label_array(train_set), options.views)
    val_files = {"files": [s.relative for s in val_set]}
    evaluation = {
        "validation": cached_pair("validation", lambda: iter(val_rgbs), len(val_set), np.float32, val_files)
    }
    for variant in VARIANTS:
        evaluation[variant] = cached_pair(
            f"ood-{variant}",
            lambda v=variant: ood_images(val_rgbs, val_set, v),
            len(val_set),
            np.float32,
            val_files,
        )
    groups = FEATURE_GROUPS[options.features]
    y_val = label_array(val_set)
    tail = tail_model(features, options.tune_from)
    head, head_history = fit_linear_head(
        options,
        groups,
        features_from(tail, train_maps),
        y_train,
        features_from(tail, evaluation["validation"]),
        y_val,
    )
    tuned, tail_history = tune(
        features,
        head,
        groups,
        train_maps,
        y_train,
        view_weights(y_train, options),
        (*evaluation["validation"], y_val) if len(y_val) else None,
        TuneOptions(
            epochs=options.tune_epochs,
            first_block=options.tune_from,
            learning_rate=options.tune_learning_rate,
            distillation=options.distillation,
            seed=options.seed,
        ),
    )
    logits = {
        name: np.concatenate(
            [
                np.asarray(tuned.predict_on_batch([maps[i : i + 512], early[i : i + 512]]))
                for i in range(0, len(maps), 512)
            ]
        )
        for name, (maps, early) in evaluation.items()
    }
    image, class_logits = compose(features, head, groups)
    check_graph(image, class_logits, val_rgbs[:4], spec, logits["validation"][:4])
    return image, class_logits, logits, epochs_of(head_history, "head") + epochs_of(tail_history, "tail")


def check_graph(
    image: Any, class_logits: Any, rgbs: list[np.ndarray], spec: InputSpec, expected: np.ndarray
) -> None:
    """The composed graph must give the logits the head gave on cached features."""
    import keras

    if not rgbs:
        return
    graph = keras.Model(image, class_logits)
    got = graph.predict(np.stack([resize_for_model(r, spec) for r in rgbs]).astype(np.float32), verbose=0)
    gap = float(np.abs(got - expected).max())
    if gap > 1e-2:
        raise RuntimeError(f"trunk + head graph disagrees with the cached-feature head by {gap:.4f}")


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


RECIPE_FUNCTIONS: dict[str, Callable[..., Trained]] = {
    "tuned": train_tuned,
    "frozen": train_frozen,
    "finetune": train_finetune,
}


def train(options: TrainOptions) -> dict[str, Any]:
    """Train, calibrate, evaluate in and out of domain, save HDF5 atomically; returns the report."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from ecolens.train.calibration import fit_temperature
    from ecolens.train.head import with_temperature

    recipe = options.chosen_recipe
    if recipe not in RECIPES:
        raise EcoLensError(f"unknown recipe {recipe!r}: one of {', '.join(RECIPES)}")
    keras.utils.set_random_seed(options.seed)
    spec = edge_input_spec(options.size)
    train_set, val_set = select(options)
    started = time.time()
    image, class_logits, logits, curves = RECIPE_FUNCTIONS[recipe](options, spec, train_set, val_set)
    log(f"trained ({recipe}) in {time.time() - started:.0f} s")

    y_val = label_array(val_set)
    # Fitted on validation photos plain and transformed: a bin's photos are not TrashNet's, and a
    # temperature fitted on TrashNet alone would stay overconfident exactly where it matters.
    all_logits = np.concatenate(list(logits.values()))
    temperature = fit_temperature(all_logits, np.tile(y_val, len(logits))) if len(y_val) else 1.0
    log(f"temperature {temperature:.3f} (fitted on validation, plain and out of domain)")
    model = with_temperature(image, class_logits, temperature, options.name.replace("-", "_"))

    report = evaluation_report(logits, y_val, temperature)
    report.update(
        train_images=len(train_set),
        backbone=options.backbone,
        recipe=recipe,
        input_size=options.size,
        resize=spec.resize,
        seed=options.seed,
    )
    if recipe in ("frozen", "tuned"):
        report.update(
            views=options.views, features=options.features, l2=options.l2, photo_weight=options.photo_weight
        )
    if recipe == "tuned":
        report.update(
            tune_from=options.tune_from,
            tune_epochs=options.tune_epochs,
            tune_learning_rate=options.tune_learning_rate,
            distillation=options.distillation,
        )
    save_h5(model, options, spec, temperature)
    options.out.with_suffix(".metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    write_curves(options.out, curves, f"{options.name} {options.version}, {recipe}")
    if len(y_val):
        from ecolens.train.calibration import draw_reliability, softmax

        y_ood = np.tile(y_val, len(logits) - 1)
        ood_logits = np.concatenate([v for k, v in logits.items() if k != "validation"])
        draw_reliability(
            options.out.with_suffix(".reliability.png"),
            {
                "validation": (softmax(logits["validation"], temperature), y_val),
                "out of domain": (softmax(ood_logits, temperature), y_ood),
                "out of domain, T=1": (softmax(ood_logits), y_ood),
            },
        )
    log_report(report)
    log(f"saved {options.out}")
    return report


def save_h5(model: Any, options: TrainOptions, spec: InputSpec, temperature: float) -> None:
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
                # Already divided inside the graph (layer "temperature"): recorded, not to apply again.
                "temperature": temperature,
                "normalization": "inside the graph: (x - 127) / 128 on raw 0..255 RGB",
            },
        )
        os.replace(tmp, options.out)
    finally:
        tmp.unlink(missing_ok=True)
