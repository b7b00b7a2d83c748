"""Frozen EfficientNet-Lite0 features: the pooled 1280-vector and the 1000 ImageNet logits.

Keeping the ImageNet head's logits beside the pooled features is what keeps what ImageNet knows
about bottles, jugs and bags (fine-tuning the trunk on one studio's photos destroyed it). The trunk
is frozen, so features of every augmented view are computed once and can be cached on disk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.progress import progress
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import resize_for_model

POOLED = 1280
IMAGENET_CLASSES = 1000
# Stage outputs of the trunk, average-pooled: textures and specular highlights (what tells clear
# plastic from glass) live in the middle of the network more than in its last, most ImageNet-specific
# layer. Layer name -> channels.
MIDDLE_TAPS = {
    "block4_add": 40,
    "block7_add": 80,
    "block10_add": 112,
    "block14_add": 192,
    "block15_project_bn": 320,
}
MIDDLE = sum(MIDDLE_TAPS.values())
WIDTH = POOLED + IMAGENET_CLASSES + MIDDLE
CHUNK = 128
log = progress("train")


def feature_model(size: int, weights: dict[str, np.ndarray] | None) -> Any:
    """Keras model: raw 0..255 RGB (size, size, 3) -> [pooled (1280), ImageNet logits (1000),
    pooled middle stages (744)], frozen."""
    import keras
    from ecolens.train.backbone import build_lite0, imagenet_logits
    from keras import layers

    trunk = build_lite0(size, weights)
    fc = layers.Dense(IMAGENET_CLASSES, name="imagenet_logits")
    logits = fc(trunk.output)
    if weights is not None:
        fc.set_weights(list(imagenet_logits(weights)))
    middle = layers.Concatenate(name="middle_features")(
        [
            layers.GlobalAveragePooling2D(name=f"{tap}_pool")(trunk.get_layer(tap).output)
            for tap in MIDDLE_TAPS
        ]
    )
    model = keras.Model(trunk.input, [trunk.output, logits, middle], name="lite0_features")
    model.trainable = False
    return model


def extract(model: Any, images: Iterable[np.ndarray], count: int, spec: InputSpec, what: str) -> np.ndarray:
    """Features (count, WIDTH) float32 of RGB images of any size, resized as the edge does."""
    out = np.empty((count, WIDTH), dtype=np.float32)
    batch: list[np.ndarray] = []
    done = 0

    def flush() -> None:
        nonlocal done
        parts = model.predict_on_batch(np.stack(batch).astype(np.float32))
        out[done : done + len(batch)] = np.concatenate([np.asarray(part) for part in parts], axis=1)
        done += len(batch)
        batch.clear()
        if done % (CHUNK * 8) == 0 or done == count:
            log(f"features of {what}: {done}/{count}")

    for rgb in images:
        batch.append(resize_for_model(rgb, spec))
        if len(batch) == CHUNK:
            flush()
    if batch:
        flush()
    if done != count:
        raise ValueError(f"expected {count} images for {what}, got {done}")
    return out


def cached(cache: Path | None, key: dict[str, Any], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, stored under ``cache`` by a hash of ``key`` (what the features depend on),
    so that trying head settings does not recompute the trunk over thousands of views."""
    if cache is None:
        return compute()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache / f"features-{key.get('what', 'x')}-{digest}.npy"
    if path.is_file():
        log(f"features of {key.get('what')}: from {path}")
        return np.load(path)
    values = compute()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, values)
    tmp.replace(path)
    return values


def split(features: np.ndarray) -> dict[str, np.ndarray]:
    """The named groups of a feature matrix, in the feature model's output order."""
    return {
        "pooled": features[:, :POOLED],
        "imagenet": features[:, POOLED : POOLED + IMAGENET_CLASSES],
        "middle": features[:, POOLED + IMAGENET_CLASSES :],
    }
