"""The Keras side of `ecolens adapt`: a trained model read as a frozen trunk and its final linear
layer (what the site's layer is fitted on), and the gated model written back from the fit."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ecolens.convert.h5meta import read_h5_metadata
from ecolens.convert.labels import LABELS, NEGATIVE_LABEL, POSITIVE_LABEL
from ecolens.convert.loading import LoadedModel, load_keras_model
from ecolens.core.errors import ModelError
from ecolens.core.metadata import InputSpec

if TYPE_CHECKING:
    from ecolens.train.adapt.fit import SiteHead


def producer(tensor: Any) -> Any:
    """The layer that made this symbolic tensor."""
    return tensor._keras_history[0]


def is_linear_dense(layer: Any) -> bool:
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    return type(layer).__name__ == "Dense" and activation == "linear"


class GroupedHead:
    """Dense layers whose outputs are added (then scaled by a temperature) read as ONE Dense
    over their concatenated inputs: W = vstack(W_g) * s, b = sum(b_g) * s."""

    def __init__(self, denses: list[Any], scale: float) -> None:
        self.denses = denses
        self.scale = scale
        self.with_bias = [d for d in denses if d.use_bias]

    def get_weights(self) -> list[np.ndarray]:
        kernels = [np.asarray(d.kernel.numpy(), dtype=np.float64) for d in self.denses]
        bias = sum(np.asarray(d.bias.numpy(), dtype=np.float64) for d in self.with_bias)
        return [np.vstack(kernels) * self.scale, np.asarray(bias) * self.scale]


class ConcatenatedFeatures:
    """The image -> the concatenated inputs of a head's Dense layers (what the head is fitted
    on), as arrays (``predict``) or as symbolic tensors, one per feature group (``groups``), to
    build the adapted model on."""

    def __init__(self, *stages: Any) -> None:
        self.stages = stages

    def predict(self, batch: np.ndarray, verbose: int = 0) -> np.ndarray:
        values: Any = batch
        for stage in self.stages:
            values = stage.predict(values, verbose=verbose)
        values = values if isinstance(values, list) else [values]
        return np.concatenate([np.asarray(v).reshape(len(batch), -1) for v in values], axis=1)

    def groups(self, inputs: Any) -> list[Any]:
        values = inputs
        for stage in self.stages:
            values = stage(values)
        return list(values) if isinstance(values, (list, tuple)) else [values]


def grouped_head(model: Any) -> tuple[ConcatenatedFeatures, GroupedHead] | None:
    """(features, head) when the softmax reads an optional Rescaling (the temperature) of one
    Dense or an Add of Dense layers, in the model itself or inside a nested head Model; else None."""
    import keras

    logits = producer(model.layers[-1].input)
    scale = 1.0
    if type(logits).__name__ == "Rescaling":
        if float(np.max(np.abs(logits.offset))) != 0.0 or np.size(logits.scale) != 1:
            return None
        scale = float(np.asarray(logits.scale).reshape(()))
        logits = producer(logits.input)
    nested = None
    if isinstance(logits, keras.Model):
        if len(logits._inbound_nodes) != 1 or len(logits.outputs) != 1:
            return None
        nested, logits = logits, producer(logits.outputs[0])
    denses = [producer(t) for t in logits.input] if type(logits).__name__ == "Add" else [logits]
    if not denses or not all(is_linear_dense(d) for d in denses) or not any(d.use_bias for d in denses):
        return None
    head = GroupedHead(denses, scale)
    inner_outputs = [d.input for d in denses]
    if nested is None:
        return ConcatenatedFeatures(keras.Model(model.inputs, inner_outputs)), head
    outer = keras.Model(model.inputs, list(nested._inbound_nodes[0].input_tensors))
    return ConcatenatedFeatures(outer, keras.Model(nested.inputs, inner_outputs)), head


def split_head(model: Any) -> tuple[ConcatenatedFeatures, Any]:
    """(features, head): what the model's final linear layer reads, and that layer (its
    ``get_weights()`` gives the logits as ``features @ w + b``).

    A model ending in Dense(softmax), Dense(logits) or Dense + Softmax/Activation: that Dense
    on the features it reads. A softmax over an optional temperature (Rescaling) of Dense
    layers added together (the reference model: a nested head with one Dense per feature group):
    those Dense layers as one over the concatenated groups, the temperature folded in. Any other
    model whose output is a softmax: the identity on its class logits.
    """
    import keras

    layers = model.layers
    last = layers[-1]
    softmax_after = type(last).__name__ in ("Softmax", "Activation") and len(layers) > 1
    head = layers[-2] if softmax_after else last
    activation = getattr(getattr(head, "activation", None), "__name__", "linear")
    if type(head).__name__ == "Dense" and activation in ("softmax", "linear"):
        return ConcatenatedFeatures(keras.Model(model.inputs, head.input)), head
    if not softmax_after:
        raise ModelError(
            f"adapt needs a model whose output is a softmax or its last layer Dense; "
            f"this one ends in {type(last).__name__}"
        )
    grouped = grouped_head(model)
    if grouped is not None:
        return grouped
    classes = int(last.input.shape[-1])
    return ConcatenatedFeatures(keras.Model(model.inputs, last.input)), IdentityHead(classes)


class IdentityHead:
    """The class logits of a softmax model read as ``logits @ I + 0``."""

    def __init__(self, classes: int) -> None:
        self.classes = classes

    def get_weights(self) -> list[np.ndarray]:
        return [np.eye(self.classes), np.zeros(self.classes)]


def gated_model(
    model: Any, features: ConcatenatedFeatures, w0: np.ndarray, b0: np.ndarray, head: SiteHead
) -> Any:
    """The adapted Keras model: the base model's trunk and features, then

        logits = base(x) + gate(x) * (site(x) - base(x)),  gate(x) = sigmoid(x . u + c)

    built from Dense layers per feature group (int8 keeps one quantization range per group),
    an Add, a Multiply and a Softmax, so `ecolens convert` and the edge take it like any model."""
    import keras

    groups = features.groups(model.inputs if len(model.inputs) > 1 else model.inputs[0])
    rows = np.cumsum([int(g.shape[-1]) for g in groups])[:-1]

    def summed(name: str, kernel: np.ndarray, bias: np.ndarray) -> Any:
        parts = []
        for i, (tensor, block) in enumerate(zip(groups, np.split(kernel, rows))):
            dense = keras.layers.Dense(block.shape[1], use_bias=i == 0, name=f"{name}_{i}")
            output = dense(tensor)
            dense.set_weights([block.astype(np.float32), *([bias.astype(np.float32)] if i == 0 else [])])
            parts.append(output)
        return parts[0] if len(parts) == 1 else keras.layers.Add(name=name)(parts)

    base = summed("base_logits", w0, b0)
    correction = summed("site_correction", head.weights - w0, head.bias - b0)
    gate_logit = summed("site_gate", head.gate.direction[:, None], np.array([head.gate.offset]))
    gate = keras.layers.Activation("sigmoid", name="site_gate_probability")(gate_logit)
    logits = keras.layers.Add(name="site_logits")(
        [base, keras.layers.Multiply(name="gated")([gate, correction])]
    )
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(model.inputs, probabilities, name=f"{model.name}_site")


def input_spec(stored: dict[str, Any], size: tuple[int, int]) -> InputSpec:
    """The preprocessing `ecolens train` recorded in the .h5 (the model's own size wins)."""
    known = {f.name for f in dataclasses.fields(InputSpec)}
    values = {k: v for k, v in dict(stored.get("input", {})).items() if k in known}
    for key in ("mean", "std"):
        if key in values:
            values[key] = tuple(values[key])
    values.update(height=size[0], width=size[1])
    return InputSpec(**values)


def base_model(path: Path) -> tuple[LoadedModel, dict[str, Any], tuple[str, ...]]:
    """The model to adapt, its EcoLens metadata and labels: a two-class plastic model, or a
    one-line error."""
    loaded = load_keras_model(path)
    stored = read_h5_metadata(path)
    labels = tuple(stored.get("labels") or LABELS)
    if set(labels) != set(LABELS) or loaded.outputs != len(labels):
        raise ModelError(
            f"{path}: adapt needs a two-class {NEGATIVE_LABEL}/{POSITIVE_LABEL} model; "
            f"it has labels {list(labels)} and {loaded.outputs} outputs"
        )
    return loaded, stored, labels
