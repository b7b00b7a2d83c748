"""The classifier on frozen Lite0 features, and the shipped graph around it.

Each feature group (pooled, ImageNet logits, pooled middle stages) is standardised inside the graph
and gets its own dense layer; the parts are added. This is the same as one dense layer on the
concatenation, but int8 quantization keeps each group in its own range (a concatenation would
share one scale between pooled values near 0..2 and logits near -10..20).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ecolens.convert.labels import LABELS

FEATURE_GROUPS = {
    "all": ("pooled", "imagenet", "middle"),
    "both": ("pooled", "imagenet"),
    "pooled": ("pooled",),
    "imagenet": ("imagenet",),
}
# Floor on each feature's variance, relative to the median one: features that are almost always
# zero would otherwise get huge standardised values (and int8 ranges).
VARIANCE_FLOOR = 0.05


def build_head(groups: dict[str, np.ndarray], dropout: float, l2: float) -> Any:
    """Keras model: the named feature groups -> class logits, standardised with ``groups``' statistics."""
    import keras
    from keras import layers

    inputs, parts = [], []
    for name, values in groups.items():
        variance = values.var(axis=0)
        variance = np.maximum(variance, VARIANCE_FLOOR * float(np.median(variance)))
        x_in = keras.Input((values.shape[1],), name=name)
        x = layers.Normalization(mean=values.mean(axis=0), variance=variance, name=f"{name}_standardise")(
            x_in
        )
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
        x = layers.Dense(
            len(LABELS),
            use_bias=not parts,
            kernel_regularizer=keras.regularizers.L2(l2),
            name=f"{name}_to_classes",
        )(x)
        inputs.append(x_in)
        parts.append(x)
    logits = parts[0] if len(parts) == 1 else layers.Add(name="class_logits")(parts)
    return keras.Model(inputs, logits, name="head")


def with_temperature(image_input: Any, logits: Any, temperature: float, name: str) -> Any:
    """The shipped model: logits / T, then softmax, so the .tflite's probabilities are calibrated."""
    import keras
    from keras import layers

    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(logits)
    probabilities = layers.Softmax(name="probabilities")(scaled)
    return keras.Model(image_input, probabilities, name=name)


def compose(features: Any, head: Any, groups: tuple[str, ...]) -> tuple[Any, Any]:
    """(image input, class logits tensor) of trunk + head as one graph (the head's layers reused)."""
    available = dict(zip(("pooled", "imagenet", "middle"), features.outputs))
    outputs = head([available[g] for g in groups])
    return features.input, outputs
