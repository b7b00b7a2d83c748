"""The ``frozen`` and ``tuned`` recipes: a linear head on frozen EfficientNet-Lite0 features of
domain-randomised views (cached), then for ``tuned`` the trunk's last blocks tuned with the head
under ImageNet-logit distillation (train/tail.py); each checked against the graph it ships."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from ecolens.convert.labels import LABELS
from ecolens.convert.progress import progress
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import resize_for_model
from ecolens.train.dataset import Sample
from ecolens.train.options import Trained, TrainOptions
from ecolens.train.photos import label_array, ood_images, photos, training_views, view_weights

log = progress("train")


def fit_linear_head(
    options: TrainOptions,
    groups: tuple[str, ...],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> tuple[Any, Any]:
    """The grouped linear head (train/head.py) on feature matrices; returns (head, History)."""
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
    ImageNet-logit distillation (train/tail.py), on cached outputs of the frozen blocks before it."""
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
