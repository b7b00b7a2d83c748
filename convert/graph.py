"""Walk a Keras model's layers through nested models (Sequential inside Sequential, a
Functional base inside a transfer model), the same way for Keras 3 and tf_keras."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def is_model(layer: Any) -> bool:
    """A nested model exposes its own ``layers`` (Sequential, Functional, Model subclasses)."""
    return isinstance(getattr(layer, "layers", None), list) and hasattr(layer, "inputs")


def walk(model: Any) -> Iterator[Any]:
    """Every non-model layer in order, descending into nested models where they sit. Keras 3
    lists arithmetic on tensors (``x / 127.5 - 1``) as operations beside its layers."""
    for layer in getattr(model, "operations", None) or model.layers:
        if is_model(layer):
            yield from walk(layer)
        else:
            yield layer


def final_layer(model: Any) -> Any:
    """The last layer that acts on the output, looking inside a nested last model."""
    layer = model.layers[-1]
    while is_model(layer) and layer.layers:
        layer = layer.layers[-1]
    return layer


def names(model: Any) -> set[str]:
    """Names of every layer and nested model, for architecture signatures."""
    found = {model.name}
    for layer in model.layers:
        found.add(layer.name)
        if is_model(layer):
            found |= names(layer)
    return found
